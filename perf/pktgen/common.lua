-- common.lua: what the rvs Pktgen-DPDK profiles share (perf/pktgen/README.md).
--
-- Each profile loads this file with dofile(); it is never run on its own.
--
-- The frames come from pcap files (make-pcaps.py, given to pktgen with -s
-- by run-profile), not from pktgen's range mode: pktgen sends a pcap file's
-- frames in the file's order and repeats the file, so the file decides
-- exactly which flows exist, and `set <port> count` sends an exact prefix
-- of it (the SYN phase). Range mode does neither (README, "Why pcap
-- files"). Nothing here sets TCP flags: they are in the files, so no
-- profile depends on a release's flag commands.
--
-- Connections are counted by rvsd, not inferred from frames: when
-- RVS_PKTGEN_RVSD_STATS names a command that prints `rvsadm --json stats`
-- (on two machines: `ssh B rvsadm --json stats`), every phase reads rvsd's
-- counters before and after and reports them next to pktgen's.
--
-- Settings, all optional, from the environment of the pktgen process:
--   RVS_PKTGEN_MODE         nat | dr | tun (profiles that work with several)
--   RVS_PKTGEN_FLOWS        established flows in the pcap files (4096)
--   RVS_PKTGEN_NEW          distinct new sources in the SYN files (65536)
--   RVS_PKTGEN_SIZE         frame size in bytes, FCS included (64)
--   RVS_PKTGEN_SECONDS      measured seconds per run or step
--   RVS_PKTGEN_RATE         offered load, percent of line rate (100)
--   RVS_PKTGEN_PPS          offered load in frames per second per port
--                           (overrides RVS_PKTGEN_RATE)
--   RVS_PKTGEN_SYN_PPS      rate of the SYN phase (10% of line rate)
--   RVS_PKTGEN_LINK_GBPS    link speed pktgen sees (10; net_af_packet says 10)
--   RVS_PKTGEN_RVSD_STATS   command printing `rvsadm --json stats`
--   RVS_PKTGEN_CLIENT_PORT  pktgen port cabled to rvsd's outside port (0)
--   RVS_PKTGEN_SERVER_PORT  pktgen port cabled to rvsd's inside port (1)
--   RVS_PKTGEN_OUT          directory for the .log and .csv files (.)
--   RVS_PKTGEN_RESULT       file for the run's figures as key=value lines
--   RVS_PKTGEN_QUIT         1: quit pktgen at the end (run-profile sets it)

local M = {}

local function env(name)
    local v = os.getenv(name)
    if v == nil or v == "" then
        return nil
    end
    return v
end

--- A number from the environment, or `default`.
function M.env_num(name, default)
    local v = env(name)
    if v == nil then
        return default
    end
    local n = tonumber(v)
    if n == nil then
        error(string.format("%s=%s is not a number", name, v), 0)
    end
    return n
end

--- One of `choices` from the environment, or `default`.
function M.env_choice(name, default, choices)
    local v = env(name) or default
    for _, c in ipairs(choices) do
        if c == v then
            return v
        end
    end
    error(string.format("%s=%s: expected one of %s", name, v, table.concat(choices, ", ")), 0)
end

--- A comma-separated list of numbers from the environment, or `default`.
function M.env_list(name, default)
    local v = env(name)
    if v == nil then
        return default
    end
    local out = {}
    for item in v:gmatch("[^,%s]+") do
        local n = tonumber(item)
        if n == nil then
            error(string.format("%s: %s is not a number", name, item), 0)
        end
        out[#out + 1] = n
    end
    return out
end

-- The test bed ---------------------------------------------------------------
-- These must match make-pcaps.py and perf/pktgen/rvsd-*.toml.

M.CLIENT = M.env_num("RVS_PKTGEN_CLIENT_PORT", 0) -- to rvsd "outside"
M.SERVER = M.env_num("RVS_PKTGEN_SERVER_PORT", 1) -- to rvsd "inside"
M.LINK_GBPS = M.env_num("RVS_PKTGEN_LINK_GBPS", 10)
M.VIP_EST = "198.18.0.100"
M.VIP_NEW = "198.18.0.101"
M.RIP_EST = "198.19.0.10"
M.FLOWS = M.env_num("RVS_PKTGEN_FLOWS", 4096)
M.NEW = M.env_num("RVS_PKTGEN_NEW", 65536)

--- Line rate in frames per second for `frame` bytes (FCS included): each
--- frame also costs 8 bytes of preamble and 12 of inter-frame gap.
function M.line_pps(frame)
    return M.LINK_GBPS * 1e9 / ((frame + 20) * 8)
end

--- The frame size on rvsd's inside port for a client frame of `frame` bytes:
--- TUN adds a 20-byte IPv4 header, NAT and DR keep the size.
function M.egress_frame(mode, frame)
    if mode == "tun" then
        return frame + 20
    end
    return frame
end

--- pktgen's percentage for `pps` frames per second of `frame` bytes sent
--- from a pcap file. pktgen (24.07.1, app/pktgen.c pktgen_wire_size) paces
--- pcap frames as if each were as long as the file's largest frame plus
--- the mbuf headroom (128), rounded up to 64, plus 24 bytes of preamble,
--- gap and FCS: 216 bytes for 64-byte frames. So 100% is 5.79 Mpps at
--- 64 B on 10GbE, not 14.88.
function M.pktgen_pct(pps, frame)
    local stored = frame - 4 + 128
    local wire = math.ceil(stored / 64) * 64 + 24
    return 100 * pps * wire * 8 / (M.LINK_GBPS * 1e9)
end

--- The most frames per second pktgen paces from a pcap file of `frame`-byte
--- frames (its 100%).
function M.pktgen_max_pps(frame)
    return M.LINK_GBPS * 1e9 / 8 / (math.ceil((frame - 4 + 128) / 64) * 64 + 24)
end

-- Output -----------------------------------------------------------------------

local function ps(p)
    return tostring(p)
end

local log_file = nil
local result_file = nil
M.stem = nil

--- Formats and prints a line, and appends it to the run's .log file.
function M.say(fmt, ...)
    local line = string.format(fmt, ...)
    print(line)
    if log_file then
        log_file:write(line, "\n")
        log_file:flush()
    end
end

--- Records one figure of the run (key=value in RVS_PKTGEN_RESULT), for
--- scripts and the test suite.
function M.result(key, value)
    if result_file then
        if type(value) == "number" and value == math.floor(value) then
            value = string.format("%d", value)
        end
        result_file:write(key, "=", tostring(value), "\n")
        result_file:flush()
    end
end

--- Starts a run: names its result files, turns pktgen's screen updates off
--- (so the printed lines stay readable) and prints the settings.
function M.begin(profile, mode)
    local dir = env("RVS_PKTGEN_OUT") or "."
    M.stem = string.format("%s/rvs-%s%s-%s", dir, profile, mode and ("-" .. mode) or "",
        os.date("%Y%m%d-%H%M%S"))
    log_file = io.open(M.stem .. ".log", "w")
    local rp = env("RVS_PKTGEN_RESULT")
    if rp then
        result_file = io.open(rp, "a")
    end
    pktgen.screen("off")
    -- pktgen loads the -s files at start but sends its single-packet
    -- template until a port is switched to its pcap file.
    pktgen.pcap(ps(M.CLIENT), "on")
    pktgen.pcap(ps(M.SERVER), "on")
    M.say("== rvs %s%s  %s", profile, mode and (" (" .. mode .. ")") or "", os.date("%Y-%m-%d %H:%M:%S"))
    M.say("   pktgen port %d -> rvsd outside, port %d -> rvsd inside, %g Gb/s links; %d flows, %d new sources",
        M.CLIENT, M.SERVER, M.LINK_GBPS, M.FLOWS, M.NEW)
    if not M.rvsd_available() then
        M.say("   RVS_PKTGEN_RVSD_STATS is not set: rvsd's counters are not read (connections not counted)")
    end
    M.result("profile", profile)
    M.result("mode", mode or "")
end

--- Ends a run (and pktgen with it when RVS_PKTGEN_QUIT=1).
function M.finish()
    M.say("== done; results in %s.log and %s.csv", M.stem, M.stem)
    M.result("done", 1)
    if log_file then
        log_file:close()
        log_file = nil
    end
    if result_file then
        result_file:close()
        result_file = nil
    end
    if env("RVS_PKTGEN_QUIT") == "1" then
        pktgen.quit()
    end
end

--- Opens the run's .csv file with `header` (a list of column names) and
--- returns a function that appends one row (a list of values).
function M.csv(header)
    local f = io.open(M.stem .. ".csv", "w")
    if f then
        f:write(table.concat(header, ","), "\n")
        f:flush()
    end
    return function(row)
        if not f then
            return
        end
        local cells = {}
        for i, v in ipairs(row) do
            if type(v) == "number" and v ~= math.floor(v) then
                cells[i] = string.format("%.4f", v)
            else
                cells[i] = tostring(v)
            end
        end
        f:write(table.concat(cells, ","), "\n")
        f:flush()
    end
end

-- rvsd's counters ------------------------------------------------------------------

-- A small JSON reader: `rvsadm --json stats` is objects, numbers, strings,
-- arrays and booleans.
local function json_decode(s)
    local pos = 1
    local value
    local function ws()
        pos = s:find("[^ \t\r\n]", pos) or #s + 1
    end
    local function str()
        local out = {}
        pos = pos + 1
        while true do
            local c = s:sub(pos, pos)
            if c == "" then
                error("unterminated string in rvsd's stats", 0)
            elseif c == '"' then
                pos = pos + 1
                return table.concat(out)
            elseif c == "\\" then
                out[#out + 1] = s:sub(pos + 1, pos + 1)
                pos = pos + 2
            else
                out[#out + 1] = c
                pos = pos + 1
            end
        end
    end
    function value()
        ws()
        local c = s:sub(pos, pos)
        if c == "{" then
            local t = {}
            pos = pos + 1
            ws()
            if s:sub(pos, pos) == "}" then
                pos = pos + 1
                return t
            end
            while true do
                ws()
                local k = str()
                ws()
                pos = pos + 1 -- ':'
                t[k] = value()
                ws()
                local d = s:sub(pos, pos)
                pos = pos + 1
                if d == "}" then
                    return t
                end
            end
        elseif c == "[" then
            local t = {}
            pos = pos + 1
            ws()
            if s:sub(pos, pos) == "]" then
                pos = pos + 1
                return t
            end
            while true do
                t[#t + 1] = value()
                ws()
                local d = s:sub(pos, pos)
                pos = pos + 1
                if d == "]" then
                    return t
                end
            end
        elseif c == '"' then
            return str()
        else
            local tok = s:match("^[%w%.%-+]+", pos)
            if tok == nil then
                error("unexpected character in rvsd's stats at " .. pos, 0)
            end
            pos = pos + #tok
            if tok == "true" then
                return true
            elseif tok == "false" then
                return false
            elseif tok == "null" then
                return nil
            end
            return tonumber(tok)
        end
    end
    return value()
end

--- True when RVS_PKTGEN_RVSD_STATS is set.
function M.rvsd_available()
    return env("RVS_PKTGEN_RVSD_STATS") ~= nil
end

--- rvsd's summed counters ("total" of `rvsadm --json stats`), or nil when
--- RVS_PKTGEN_RVSD_STATS is not set.
function M.rvsd()
    local cmd = env("RVS_PKTGEN_RVSD_STATS")
    if cmd == nil then
        return nil
    end
    local p = io.popen(cmd, "r")
    local text = p and p:read("a") or ""
    if p then
        p:close()
    end
    local ok, doc = pcall(json_decode, text)
    if not ok or type(doc) ~= "table" or type(doc.total) ~= "table" then
        error(string.format("RVS_PKTGEN_RVSD_STATS (%s) printed no rvsadm stats: %s", cmd, text:sub(1, 200)), 0)
    end
    return doc.total
end

--- What changed in rvsd between two readings: the counters the profiles
--- report, drops by reason, and the connections in the table at the end.
function M.rvsd_delta(a, b)
    if a == nil or b == nil then
        return nil
    end
    local d = { drops = {}, connections = b.connections or 0 }
    for _, k in ipairs({ "rx_packets", "tx_packets", "forwarded", "conns_created" }) do
        d[k] = (b[k] or 0) - (a[k] or 0)
    end
    for reason, n in pairs(b.drops or {}) do
        local x = n - ((a.drops or {})[reason] or 0)
        if x ~= 0 then
            d.drops[reason] = x
        end
    end
    return d
end

--- Prints and records an rvsd delta under `prefix`.
function M.report_rvsd(prefix, d)
    if d == nil then
        M.say("   rvsd: (counters not read)")
        return
    end
    local drops = {}
    for reason, n in pairs(d.drops) do
        drops[#drops + 1] = string.format("%s %d", reason, n)
    end
    table.sort(drops)
    M.say("   rvsd: rx %d, forwarded %d, connections created %d, in table %d, drops: %s",
        d.rx_packets, d.forwarded, d.conns_created, d.connections,
        #drops > 0 and table.concat(drops, ", ") or "none")
    M.result(prefix .. ".rvsd_rx", d.rx_packets)
    M.result(prefix .. ".rvsd_forwarded", d.forwarded)
    M.result(prefix .. ".rvsd_conns_created", d.conns_created)
    M.result(prefix .. ".rvsd_connections", d.connections)
    M.result(prefix .. ".rvsd_no_connection", d.drops.no_connection or 0)
    local total = 0
    for _, n in pairs(d.drops) do
        total = total + n
    end
    M.result(prefix .. ".rvsd_drops", total)
end

-- pktgen ----------------------------------------------------------------------------

--- Sets port p to send `pps` frames per second of `frame` bytes from its
--- pcap file (at most pktgen's 100%).
function M.set_pps(p, pps, frame)
    local pct = M.pktgen_pct(pps, frame)
    if pct > 100 then
        pct = 100
    end
    pktgen.set(ps(p), "rate", pct)
end

--- The offered rate of a profile's measured phase in frames per second:
--- RVS_PKTGEN_PPS, else RVS_PKTGEN_RATE percent of line rate, capped at
--- what pktgen paces from a pcap file.
function M.offered_pps(frame)
    local pps = M.env_num("RVS_PKTGEN_PPS", nil)
    if pps == nil then
        pps = M.line_pps(frame) * M.env_num("RVS_PKTGEN_RATE", 100) / 100
    end
    return math.min(pps, M.pktgen_max_pps(frame))
end

local function port_stat(p)
    local t = pktgen.portStats(ps(p), "port")
    local s = t and t[p]
    if s == nil then
        error(string.format("pktgen.portStats(%d) returned no entry for port %d", p, p), 0)
    end
    return { tx = s.opackets or 0, rx = s.ipackets or 0, missed = s.imissed or 0 }
end

--- Both ports' counters since pktgen started (at the last one-second tick).
function M.totals()
    return { [M.CLIENT] = port_stat(M.CLIENT), [M.SERVER] = port_stat(M.SERVER) }
end

--- Waits `ms` milliseconds (pktgen's statistics tick once a second).
function M.wait(ms)
    pktgen.delay(math.floor(ms))
end

--- Stops both ports.
function M.stop_all()
    pktgen.stop(ps(M.CLIENT))
    pktgen.stop(ps(M.SERVER))
end

--- Sends the next n frames of port p's pcap file at `pps`, waits until they
--- are out and counted (and rvsd has forwarded them), and returns pktgen's
--- {sent, received on port rx, missed} and rvsd's delta.
function M.send_count(p, n, pps, frame, rx)
    M.wait(1500)
    local before, rb = M.totals(), M.rvsd()
    pktgen.set(ps(p), "count", n)
    M.set_pps(p, pps, frame)
    pktgen.start(ps(p))
    local expect = n / pps
    local waited, sent = 0, 0
    repeat
        M.wait(500)
        waited = waited + 0.5
        sent = M.totals()[p].tx - before[p].tx
    until sent >= n or waited > 3 * expect + 10
    pktgen.stop(ps(p))
    pktgen.set(ps(p), "count", 0)
    M.wait(2500)
    local after, ra = M.totals(), M.rvsd()
    return {
        sent = after[p].tx - before[p].tx,
        received = after[rx].rx - before[rx].rx,
        missed = after[rx].missed - before[rx].missed,
    }, M.rvsd_delta(rb, ra)
end

--- The SYN phase: port 0 sends the first FLOWS frames of its file, one bare
--- SYN per established flow; rvsd makes one connection per SYN and forwards
--- it to port 1. Prints and records both sides' counts (prefix "open").
function M.open_flows(frame)
    local pps = M.env_num("RVS_PKTGEN_SYN_PPS", M.line_pps(frame) / 10)
    pps = math.min(pps, M.pktgen_max_pps(frame))
    M.say("-- SYN phase: one bare SYN for each of %d flows -> %s:80 at %.0f frames/s", M.FLOWS, M.VIP_EST, pps)
    local r, d = M.send_count(M.CLIENT, M.FLOWS, pps, frame, M.SERVER)
    M.say("   pktgen: port %d sent %d SYNs, port %d received %d from rvsd (%d dropped by its NIC)",
        M.CLIENT, r.sent, M.SERVER, r.received, r.missed)
    M.report_rvsd("open", d)
    M.result("open.sent", r.sent)
    M.result("open.delivered", r.received)
    if d and d.connections < M.FLOWS then
        M.say("   WARNING: rvsd holds %d connections for %d flows: some flows have none and " ..
            "their frames will be dropped (no_connection)", d.connections, M.FLOWS)
    end
    return r, d
end

--- Runs `flows` (a list of {name, tx, rx, frame, egress}) from their pcap
--- files at `pps` each (or port_pps[port]) for `seconds`, one line per second, and returns for
--- each flow {offered, delivered, missed, seconds} and rvsd's delta. Both
--- sides are read while nothing is sent (before the start, and 2.5 s after
--- the stop, past a statistics tick), so pktgen's and rvsd's counts cover
--- exactly the same frames.
function M.run_ports(flows, pps, seconds, port_pps)
    M.wait(1500)
    local before, rb = M.totals(), M.rvsd()
    for _, f in ipairs(flows) do
        M.set_pps(f.tx, (port_pps and port_pps[f.tx]) or pps, f.frame)
        pktgen.start(ps(f.tx))
    end
    local last = before
    for s = 1, seconds do
        M.wait(1000)
        local now = M.totals()
        local parts = {}
        for _, f in ipairs(flows) do
            parts[#parts + 1] = string.format("%s %9d -> %9d /s", f.name, now[f.tx].tx - last[f.tx].tx,
                now[f.rx].rx - last[f.rx].rx)
        end
        M.say("   %3d s  %s", s, table.concat(parts, "   "))
        last = now
    end
    for _, f in ipairs(flows) do
        pktgen.stop(ps(f.tx))
    end
    M.wait(2500)
    local after, ra = M.totals(), M.rvsd()
    local res = {}
    for i, f in ipairs(flows) do
        res[i] = {
            offered = after[f.tx].tx - before[f.tx].tx,
            delivered = after[f.rx].rx - before[f.rx].rx,
            missed = after[f.rx].missed - before[f.rx].missed,
            seconds = seconds,
        }
    end
    return res, M.rvsd_delta(rb, ra)
end

--- Loss in percent of offered, or 0 when nothing was offered.
function M.loss_pct(r)
    if r.offered <= 0 then
        return 0
    end
    return math.max(0, 100 * (1 - r.delivered / r.offered))
end

--- Prints and records one flow's result against the line rate of its
--- frames (rates are frames over the seconds the flow was sent).
function M.report(prefix, name, r, frame, egress)
    local line_in, line_out = M.line_pps(frame), M.line_pps(egress)
    local off, del = r.offered / r.seconds, r.delivered / r.seconds
    M.say("   %-12s offered %d frames (%.4f Mpps, %.2f%% of %.2f)  delivered %d (%.4f Mpps, %.2f%% of %.2f)  loss %.3f%%",
        name, r.offered, off / 1e6, 100 * off / line_in, line_in / 1e6, r.delivered, del / 1e6,
        100 * del / line_out, line_out / 1e6, M.loss_pct(r))
    if r.missed > 0 then
        M.say("   %-12s NOTE: pktgen's receiving NIC dropped %d frames itself (imissed)", "", r.missed)
    end
    M.result(prefix .. ".offered", r.offered)
    M.result(prefix .. ".delivered", r.delivered)
end

M.RESULT_COLUMNS = { "profile", "mode", "frame_bytes", "flow", "offered_frames", "delivered_frames",
    "seconds", "offered_mpps", "delivered_mpps", "line_mpps", "egress_line_mpps", "loss_pct",
    "rvsd_forwarded", "rvsd_conns_created", "rvsd_no_connection" }

--- One .csv row for a flow's result.
function M.result_row(profile, mode, name, r, frame, egress, d)
    d = d or { forwarded = "", conns_created = "", drops = {} }
    return { profile, mode, frame, name, r.offered, r.delivered, r.seconds, r.offered / r.seconds / 1e6,
        r.delivered / r.seconds / 1e6, M.line_pps(frame) / 1e6, M.line_pps(egress) / 1e6, M.loss_pct(r),
        d.forwarded, d.conns_created, d.drops and (d.drops.no_connection or 0) or "" }
end

--- The flows of the established test: NAT both ways (client -> real
--- server on port 0, replies on port 1), DR and TUN one way.
function M.established_flows(mode, size, directions)
    local flows = {}
    if mode ~= "nat" then
        directions = "forward"
    end
    if directions ~= "reply" then
        flows[#flows + 1] = { key = "fwd", name = "client->rs", tx = M.CLIENT, rx = M.SERVER, frame = size,
            egress = M.egress_frame(mode, size) }
    end
    if directions ~= "forward" then
        flows[#flows + 1] = { key = "rev", name = "rs->client", tx = M.SERVER, rx = M.CLIENT, frame = size,
            egress = size }
    end
    return flows
end

--- The established-flow test of established-nat.lua, dr.lua and tun.lua:
--- the SYN phase opens FLOWS connections, then the ACK-only frames run
--- over all of them (NAT: and the replies) and are measured, with rvsd's
--- counters over the same window.
function M.run_established(profile, mode)
    local size = M.env_num("RVS_PKTGEN_SIZE", 64)
    local seconds = M.env_num("RVS_PKTGEN_SECONDS", 10)
    local directions = "forward"
    if mode == "nat" then
        directions = M.env_choice("RVS_PKTGEN_DIRECTIONS", "both", { "both", "forward", "reply" })
    end
    if mode == "tun" and size > 1498 then
        error("TUN adds 20 bytes: frames above 1498 B no longer fit a 1500-byte MTU " ..
            "once wrapped; use RVS_PKTGEN_SIZE <= 1498", 0)
    end
    M.begin(profile, mode)
    M.stop_all()
    M.result("size", size)
    M.result("flows", M.FLOWS)
    M.open_flows(size)
    local pps = M.offered_pps(size)
    local flows = M.established_flows(mode, size, directions)
    M.say("-- established flows: %d B ACK-only frames over the %d flows, %.0f frames/s per port, %s, %d s",
        size, M.FLOWS, pps, directions, seconds)
    local res, d = M.run_ports(flows, pps, seconds)
    M.say("-- result: pktgen's counters ('delivered' is what rvsd forwarded) and rvsd's over the same window")
    local row = M.csv(M.RESULT_COLUMNS)
    for i, f in ipairs(flows) do
        M.report("est." .. f.key, f.name, res[i], f.frame, f.egress)
        row(M.result_row(profile, mode, f.name, res[i], f.frame, f.egress, d))
    end
    M.report_rvsd("est", d)
    if d then
        M.say("   rvsd holds %d connections; %d frames of established flows were dropped as no_connection",
            d.connections, d.drops.no_connection or 0)
    end
    M.finish()
end

--- Runs a profile's body; on an error prints it and records it (error=...)
--- instead of leaving pktgen at its prompt, so a script that runs pktgen
--- (run-profile) ends either way.
function M.main(body)
    local ok, err = pcall(body)
    if not ok then
        M.say("ERROR: %s", tostring(err))
        M.result("error", tostring(err):gsub("\n", " "))
        M.finish()
    end
end

return M
