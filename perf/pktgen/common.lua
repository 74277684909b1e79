-- common.lua: what the rvs Pktgen-DPDK profiles share (perf/pktgen/README.md).
--
-- Each profile loads this file with dofile(); it is never run on its own.
-- It holds the test bed's addresses, which must match perf/pktgen/rvsd-*.toml,
-- builds the pktgen CLI commands for each traffic stream, runs them through a
-- throw-away command file (pktgen.load), and measures rates from pktgen's
-- per-second port statistics.
--
-- Why CLI commands and not pktgen's Lua setters: pktgen's Lua library has no
-- TCP-flags setter, and the flags are what decide whether rvs makes a
-- connection (only a bare SYN opens one). The CLI has them ("range <port> tcp
-- flag set syn" up to 24.07, "range <port> tcp flags syn" from 24.10.2), so
-- everything a profile configures goes through the CLI, and Lua only
-- sequences, waits and measures. The Lua functions used are pktgen.load,
-- start, stop, set (count and rate), delay, portStats and screen, each called
-- as the scripts shipped with pktgen call it (test/main.lua,
-- scripts/rfc2544_tput_test.lua).
--
-- Settings, all optional, from the environment of the pktgen process
-- (sudo env NAME=value pktgen ...):
--   RVS_PKTGEN_MODE         nat | dr | tun: the rvsd config in use (profiles
--                           that work with several)
--   RVS_PKTGEN_SIZE         frame size in bytes, FCS included (default 64)
--   RVS_PKTGEN_SECONDS      measured seconds per run or step
--   RVS_PKTGEN_RATE         offered load, percent of line rate (default 100)
--   RVS_PKTGEN_SYN_PCT      rate of the SYN phase that opens the established
--                           flows, percent of line rate (default 10)
--   RVS_PKTGEN_LINK_GBPS    link speed used to turn rates into packets per
--                           second (default 10)
--   RVS_PKTGEN_FLAGS        flag | flags: the TCP-flag CLI syntax of your
--                           pktgen ("flag set syn" up to 24.07, "flags syn"
--                           from 24.10.2); unset: try the first, then the second
--   RVS_PKTGEN_CLIENT_PORT  pktgen port cabled to rvsd's outside port (0)
--   RVS_PKTGEN_SERVER_PORT  pktgen port cabled to rvsd's inside port (1)
--   RVS_PKTGEN_OUT          directory for the .log and .csv result files (.)
--   RVS_PKTGEN_ECHO         1: print every CLI command sent to pktgen

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
-- These must match perf/pktgen/rvsd-nat.toml, rvsd-dr.toml and rvsd-tun.toml.

M.CLIENT = M.env_num("RVS_PKTGEN_CLIENT_PORT", 0) -- to rvsd "outside"
M.SERVER = M.env_num("RVS_PKTGEN_SERVER_PORT", 1) -- to rvsd "inside"
M.LINK_GBPS = M.env_num("RVS_PKTGEN_LINK_GBPS", 10)

M.RVS_OUTSIDE_MAC = "02:00:00:00:0b:00" -- [[interface]] "outside" mac
M.RVS_INSIDE_MAC = "02:00:00:00:0b:01" -- [[interface]] "inside" mac

M.VIP_EST = "198.18.0.100" -- virtual server "est": one real server
M.VIP_NEW = "198.18.0.101" -- virtual server "new": eight real servers
M.VPORT = 80
M.RIP_EST = "198.19.0.10" -- the "est" real server
M.RPORT = { nat = 8080, dr = 80, tun = 80 } -- its port per forwarding method

-- Established flows: 16 client addresses x 64,511 source ports. The counts
-- are coprime, and pktgen's range mode steps every field once per frame, so
-- the (address, port) pairs only repeat after 16 x 64,511 = 1,032,176 frames:
-- that many distinct connections.
M.EST_CLIENTS = { "198.18.64.0", "198.18.64.15" }
-- New connections (SYN flood, connection rate): 32,766 addresses x 64,511
-- ports, again coprime: 2,113,767,426 tuples before the first repeats.
M.NEW_CLIENTS = { "198.18.128.1", "198.18.255.254" }
-- Source ports 1024..65534. Not 65535: some pktgen releases keep the port in
-- a 16-bit variable while stepping it, and wrap 65535 + 1 onto the maximum
-- again, so a range ending at 65535 would stick there.
M.SPORTS = { 1024, 65534 }

local function ip_to_int(s)
    local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
    assert(a, "not an IPv4 address: " .. tostring(s))
    return ((tonumber(a) * 256 + tonumber(b)) * 256 + tonumber(c)) * 256 + tonumber(d)
end

local function span(r, as_ip)
    if as_ip then
        return ip_to_int(r[2]) - ip_to_int(r[1]) + 1
    end
    return r[2] - r[1] + 1
end

local function gcd(a, b)
    while b ~= 0 do
        a, b = b, a % b
    end
    return a
end

M.N_PORTS = span(M.SPORTS)
M.EST_FLOWS = span(M.EST_CLIENTS, true) * M.N_PORTS
M.NEW_TUPLES = span(M.NEW_CLIENTS, true) * M.N_PORTS
assert(gcd(span(M.EST_CLIENTS, true), M.N_PORTS) == 1, "EST address and port counts must be coprime")
assert(gcd(span(M.NEW_CLIENTS, true), M.N_PORTS) == 1, "NEW address and port counts must be coprime")

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

-- Output -----------------------------------------------------------------------

local log_file = nil
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

--- Starts a run: names its result files, turns pktgen's screen updates off
--- (so the printed lines stay readable) and prints the settings.
function M.begin(profile, mode)
    local dir = env("RVS_PKTGEN_OUT") or "."
    M.stem = string.format("%s/rvs-%s%s-%s", dir, profile, mode and ("-" .. mode) or "",
        os.date("%Y%m%d-%H%M%S"))
    log_file = io.open(M.stem .. ".log", "w")
    pktgen.screen("off")
    M.say("== rvs %s%s  %s", profile, mode and (" (" .. mode .. ")") or "", os.date("%Y-%m-%d %H:%M:%S"))
    M.say("   pktgen port %d -> rvsd outside %s, port %d -> rvsd inside %s, %g Gb/s links",
        M.CLIENT, M.RVS_OUTSIDE_MAC, M.SERVER, M.RVS_INSIDE_MAC, M.LINK_GBPS)
    if not log_file then
        M.say("   (cannot write %s.log; results are only printed)", M.stem)
    end
end

--- Ends a run.
function M.finish()
    M.say("== done; results in %s.log and %s.csv. Type 'on' for pktgen's screen.", M.stem, M.stem)
    if log_file then
        log_file:close()
        log_file = nil
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

-- Talking to pktgen -----------------------------------------------------------------

local echo = env("RVS_PKTGEN_ECHO") == "1"

--- Runs pktgen CLI commands (a list of lines) as a command file. Raises an
--- error naming the file's commands when pktgen refuses it.
function M.cli(lines)
    if echo then
        for _, l in ipairs(lines) do
            M.say("   pktgen> %s", l)
        end
    end
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    for _, l in ipairs(lines) do
        f:write(l, "\n")
    end
    f:close()
    local ok, err = pcall(pktgen.load, path)
    os.remove(path)
    if not ok then
        error(string.format("pktgen refused the commands [%s]: %s", table.concat(lines, "; "),
            tostring(err)), 0)
    end
end

--- Like cli, but returns false instead of raising an error.
function M.try_cli(lines)
    return (pcall(M.cli, lines))
end

local function ps(p)
    return tostring(p)
end

--- Offered load of port `p` in percent of line rate. pktgen turns the
--- percentage into a frame rate with the size of its single-packet template,
--- which stream() keeps equal to the range size.
function M.set_rate(p, pct)
    if pct > 100 then
        pct = 100
    end
    pktgen.set(ps(p), "rate", pct)
end

M.FLAGS_SYNTAX = env("RVS_PKTGEN_FLAGS")
if M.FLAGS_SYNTAX ~= nil and M.FLAGS_SYNTAX ~= "flag" and M.FLAGS_SYNTAX ~= "flags" then
    error("RVS_PKTGEN_FLAGS must be flag or flags", 0)
end

local function flag_lines(syntax, p, flag)
    if syntax == "flags" then
        return {
            string.format("set %d tcp flags %s", p, flag),
            string.format("range %d tcp flags %s", p, flag),
        }
    end
    return {
        string.format("set %d tcp flag clr all", p),
        string.format("set %d tcp flag set %s", p, flag),
        string.format("range %d tcp flag clr all", p),
        string.format("range %d tcp flag set %s", p, flag),
    }
end

--- Makes `flag` ("syn" or "ack") the only TCP flag of port p's frames, in
--- the single-packet template and in range mode (some releases take the
--- range frames' flags from the template).
function M.tcp_flag(p, flag)
    if M.FLAGS_SYNTAX then
        M.cli(flag_lines(M.FLAGS_SYNTAX, p, flag))
        return
    end
    if M.try_cli(flag_lines("flag", p, flag)) then
        M.FLAGS_SYNTAX = "flag"
    else
        M.cli(flag_lines("flags", p, flag))
        M.FLAGS_SYNTAX = "flags"
    end
    M.say("   TCP flags set with pktgen's \"tcp %s\" commands", M.FLAGS_SYNTAX)
end

--- Configures port s.port for range mode with one TCP stream:
---   s.dst_mac              destination MAC (one of rvsd's ports)
---   s.src_ip, s.dst_ip     {first, last}: stepped by one address per frame
---                          when first ~= last, else fixed
---   s.sport, s.dport       {min, max}: likewise, one port per frame
---   s.size                 frame size, FCS included
---   s.flag                 "syn" or "ack"
--- Leaves the port stopped, sending forever once started.
function M.stream(s)
    local p = s.port
    local L = {}
    local function add(fmt, ...)
        L[#L + 1] = string.format(fmt, ...)
    end
    local function walk(what, r, as_ip)
        local fixed = r[1] == r[2]
        add("range %d %s start %s", p, what, r[1])
        add("range %d %s min %s", p, what, r[1])
        add("range %d %s max %s", p, what, r[2])
        if as_ip then
            add("range %d %s inc %s", p, what, fixed and "0.0.0.0" or "0.0.0.1")
        else
            add("range %d %s inc %d", p, what, fixed and 0 or 1)
        end
    end
    add("stop %d", p)
    add("disable %d range", p)
    add("set %d count 0", p)
    add("set %d type ipv4", p)
    add("set %d proto tcp", p)
    add("set %d size %d", p, s.size)
    add("range %d proto tcp", p)
    add("range %d dst mac start %s", p, s.dst_mac)
    add("range %d dst mac inc 00:00:00:00:00:00", p)
    walk("src ip", s.src_ip, true)
    walk("dst ip", s.dst_ip, true)
    walk("src port", s.sport, false)
    walk("dst port", s.dport, false)
    walk("size", { s.size, s.size }, false)
    M.cli(L)
    -- TTL 64 in range mode where the release has a range TTL (rvsd drops a
    -- frame it would forward with TTL 0 or 1). Optional: older releases
    -- have no such command and send the template's TTL, 64.
    M.try_cli({
        string.format("range %d ttl start 64", p),
        string.format("range %d ttl min 64", p),
        string.format("range %d ttl max 64", p),
        string.format("range %d ttl inc 0", p),
    })
    M.tcp_flag(p, s.flag)
    M.cli({ string.format("enable %d range", p) })
end

--- Changes the frame size of a configured stream on port p.
function M.resize(p, size)
    M.cli({
        string.format("set %d size %d", p, size),
        string.format("range %d size start %d", p, size),
        string.format("range %d size min %d", p, size),
        string.format("range %d size max %d", p, size),
        string.format("range %d size inc 0", p),
    })
end

--- Randomises the TCP source port of every frame port p sends (pktgen's
--- random bit masks: the 16 bits at byte 34 of an untagged IPv4 frame), or
--- turns that off. The bits are written just before transmission, after
--- the checksums: the TCP checksum goes wrong, which rvs does not check;
--- the IPv4 header, whose checksum rvs does check, is left alone.
function M.random_src_port(p, on)
    if on then
        M.cli({ string.format("set %d rnd 0 34 %s%s", p, string.rep("X", 16), string.rep(".", 16)) })
    else
        M.cli({ string.format("disable %d random", p) })
    end
end

-- Streams of the test bed ----------------------------------------------------------

--- Clients -> VIP_EST:80 on the client port, one frame per established flow.
function M.client_est(size, flag)
    M.stream({
        port = M.CLIENT, dst_mac = M.RVS_OUTSIDE_MAC,
        src_ip = M.EST_CLIENTS, dst_ip = { M.VIP_EST, M.VIP_EST },
        sport = M.SPORTS, dport = { M.VPORT, M.VPORT },
        size = size, flag = flag,
    })
end

--- The NAT real server's replies, RIP_EST:8080 -> clients, on the server
--- port: the same (client address, client port) pairs in the same order.
function M.server_est(size, flag)
    M.stream({
        port = M.SERVER, dst_mac = M.RVS_INSIDE_MAC,
        src_ip = { M.RIP_EST, M.RIP_EST }, dst_ip = M.EST_CLIENTS,
        sport = { M.RPORT.nat, M.RPORT.nat }, dport = M.SPORTS,
        size = size, flag = flag,
    })
end

--- SYNs from a walk over NEW_CLIENTS x SPORTS to VIP_NEW:80: every frame a
--- tuple rvs has not seen (for 2.1 billion frames).
function M.client_new(size)
    M.stream({
        port = M.CLIENT, dst_mac = M.RVS_OUTSIDE_MAC,
        src_ip = M.NEW_CLIENTS, dst_ip = { M.VIP_NEW, M.VIP_NEW },
        sport = M.SPORTS, dport = { M.VPORT, M.VPORT },
        size = size, flag = "syn",
    })
end

-- Statistics ------------------------------------------------------------------------
-- pktgen refreshes its port statistics once a second from a timer (which
-- pktgen.delay keeps running): portStats(p, "port") is the snapshot of the
-- totals at the last tick, portStats(p, "rate") the difference between the
-- last two ticks, i.e. the last second's rates.

local function port_stat(p, kind)
    local t = pktgen.portStats(ps(p), kind)
    local s = t and t[p]
    if s == nil then
        error(string.format("pktgen.portStats(%d, %q) returned no entry for port %d", p, kind, p), 0)
    end
    return {
        tx = s.opackets or 0,
        rx = s.ipackets or 0,
        missed = s.imissed or 0, -- frames the NIC dropped: pktgen's receive too slow
        nombuf = s.rx_nombuf or 0,
    }
end

local function both(kind)
    return { [M.CLIENT] = port_stat(M.CLIENT, kind), [M.SERVER] = port_stat(M.SERVER, kind) }
end

--- Counters of both ports since pktgen started (at the last timer tick).
function M.totals()
    return both("port")
end

--- Both ports' frames per second over the last full second.
function M.rates()
    return both("rate")
end

--- Waits `ms` milliseconds (at least one statistics tick when >= 1000).
function M.wait(ms)
    pktgen.delay(math.floor(ms))
end

--- Stops both ports and waits until their last frames are counted.
function M.stop_all()
    pktgen.stop(ps(M.CLIENT))
    pktgen.stop(ps(M.SERVER))
    M.wait(2000)
end

--- Stops everything a previous run may have left going.
function M.reset()
    pktgen.stop(ps(M.CLIENT))
    pktgen.stop(ps(M.SERVER))
    for _, p in ipairs({ M.CLIENT, M.SERVER }) do
        M.cli({ string.format("disable %d random", p), string.format("set %d count 0", p) })
    end
    M.wait(2000)
end

--- Sends exactly n frames from port p (configured by stream()) at pct
--- percent of line rate for frames of `size` bytes, waits until they are out
--- and counted, and returns the frames p sent, those port rx received and
--- those rx's NIC dropped for want of a free receive slot.
function M.send_count(p, n, pct, size, rx)
    M.wait(1500)
    local before = M.totals()
    pktgen.set(ps(p), "count", n)
    M.set_rate(p, pct)
    pktgen.start(ps(p))
    local expect = n / (M.line_pps(size) * math.min(pct, 100) / 100)
    local waited, sent = 0, 0
    repeat
        M.wait(500)
        waited = waited + 0.5
        sent = M.totals()[p].tx - before[p].tx
    until sent >= n or waited > 3 * expect + 10
    pktgen.stop(ps(p))
    pktgen.set(ps(p), "count", 0)
    M.wait(2000)
    local after = M.totals()
    return after[p].tx - before[p].tx, after[rx].rx - before[rx].rx, after[rx].missed - before[rx].missed
end

--- Opens every established flow. The client port sends one bare SYN per
--- flow (rvs creates the connection in SYN_RECV and forwards the SYN, which
--- the server port counts); then the client stream is switched to ACK-only
--- frames, which move each connection to ESTABLISHED on its first one and
--- keep it there. With NAT the server port is set up to send the replies.
--- Streams are left configured and stopped.
function M.establish(mode, size)
    local pct = M.env_num("RVS_PKTGEN_SYN_PCT", 10)
    M.client_est(size, "syn")
    M.say("-- SYN phase: %d flows (%s..%s x ports %d..%d -> %s:%d) at %g%% of line rate",
        M.EST_FLOWS, M.EST_CLIENTS[1], M.EST_CLIENTS[2], M.SPORTS[1], M.SPORTS[2], M.VIP_EST, M.VPORT, pct)
    local sent, got, missed = M.send_count(M.CLIENT, M.EST_FLOWS, pct, size, M.SERVER)
    M.say("   port %d sent %d SYNs; port %d received %d from rvsd (%d dropped by its NIC)",
        M.CLIENT, sent, M.SERVER, got, missed)
    if sent < M.EST_FLOWS then
        M.say("   WARNING: pktgen sent fewer SYNs than flows; some flows will not exist")
    end
    if got < 0.01 * sent then
        error(string.format(
            "rvsd forwarded %d of %d SYNs. Look at 'rvsadm stats' on machine B: " ..
            "no_connection drops mean the frames did not carry a bare SYN (set " ..
            "RVS_PKTGEN_FLAGS, see the README); other_mac, no_service or " ..
            "bad_checksum name an address or frame problem; no rx_packets at all " ..
            "means cabling or port order (RVS_PKTGEN_CLIENT_PORT).", got, sent), 0)
    elseif got < 0.99 * sent then
        M.say("   WARNING: %.2f%% of the SYNs did not come back; those flows have no " ..
            "connection and their ACKs will be dropped (no_connection). Lower " ..
            "RVS_PKTGEN_SYN_PCT if rvsd's rx_packets fell short of what was sent.",
            100 * (1 - got / sent))
    end
    M.client_est(size, "ack")
    if mode == "nat" then
        M.server_est(size, "ack")
    end
end

--- Measures running streams: waits `warmup` seconds, then reads each
--- second's rates for `seconds` seconds, printing one line per second, and
--- returns for each flow {offered, delivered, missed} in frames per second
--- (means over the measured seconds). A flow is {name, tx = port that sends,
--- rx = port that receives}.
function M.measure(flows, seconds, warmup)
    M.wait(1000 * warmup)
    local sum = {}
    for i = 1, #flows do
        sum[i] = { offered = 0, delivered = 0, missed = 0 }
    end
    for s = 1, seconds do
        M.wait(1000)
        local r = M.rates()
        local parts = {}
        for i, f in ipairs(flows) do
            local tx, rx, missed = r[f.tx].tx, r[f.rx].rx, r[f.rx].missed
            sum[i].offered = sum[i].offered + tx
            sum[i].delivered = sum[i].delivered + rx
            sum[i].missed = sum[i].missed + missed
            parts[#parts + 1] = string.format("%s %7.3f -> %7.3f Mpps", f.name, tx / 1e6, rx / 1e6)
        end
        M.say("   %3d s  %s", s, table.concat(parts, "   "))
    end
    for i = 1, #flows do
        sum[i].offered = sum[i].offered / seconds
        sum[i].delivered = sum[i].delivered / seconds
        sum[i].missed = sum[i].missed / seconds
    end
    return sum
end

--- Loss in percent of offered, or 0 when nothing was offered.
function M.loss_pct(r)
    if r.offered <= 0 then
        return 0
    end
    local l = 100 * (1 - r.delivered / r.offered)
    if l < 0 then
        l = 0 -- one-second samples of two ports can disagree by a few frames
    end
    return l
end

--- Prints one flow's result against the line rate of its frames.
function M.report(name, r, frame, egress)
    local line_in, line_out = M.line_pps(frame), M.line_pps(egress)
    M.say("   %-16s offered %7.3f Mpps (%5.1f%% of %.2f)  delivered %7.3f Mpps (%5.1f%% of %.2f)  loss %6.3f%%",
        name, r.offered / 1e6, 100 * r.offered / line_in, line_in / 1e6,
        r.delivered / 1e6, 100 * r.delivered / line_out, line_out / 1e6, M.loss_pct(r))
    if r.missed > 0 then
        M.say("   %-16s NOTE: pktgen's receiving NIC dropped %.3f Mpps itself (imissed): " ..
            "give its receive side more lcores; 'delivered' undercounts rvsd", "", r.missed / 1e6)
    end
end

M.RESULT_COLUMNS = { "profile", "mode", "frame_bytes", "flow", "offered_mpps", "delivered_mpps",
    "line_mpps", "egress_line_mpps", "loss_pct", "pktgen_imissed_mpps" }

--- One .csv row for a flow's result.
function M.result_row(profile, mode, name, r, frame, egress)
    return { profile, mode, frame, name, r.offered / 1e6, r.delivered / 1e6, M.line_pps(frame) / 1e6,
        M.line_pps(egress) / 1e6, M.loss_pct(r), r.missed / 1e6 }
end

--- Starts the established-flow streams of `mode` at `rate` percent and
--- returns the flows to measure. NAT: "both" (clients and replies),
--- "forward" (client -> real server only) or "reply"; DR and TUN are
--- one-way, client -> real server.
function M.start_established(mode, size, rate, directions)
    local flows = {}
    if mode ~= "nat" then
        directions = "forward"
    end
    if directions ~= "reply" then
        M.set_rate(M.CLIENT, rate)
        pktgen.start(ps(M.CLIENT))
        flows[#flows + 1] = { name = "client->rs", tx = M.CLIENT, rx = M.SERVER,
            frame = size, egress = M.egress_frame(mode, size) }
    end
    if directions ~= "forward" then
        M.set_rate(M.SERVER, rate)
        pktgen.start(ps(M.SERVER))
        flows[#flows + 1] = { name = "rs->client", tx = M.SERVER, rx = M.CLIENT,
            frame = size, egress = size }
    end
    return flows
end

--- The whole established-flow test of established-nat.lua, dr.lua and
--- tun.lua: open EST_FLOWS connections, then send ACK-only frames over all
--- of them at RVS_PKTGEN_RATE percent of line rate and measure.
function M.run_established(profile, mode)
    local size = M.env_num("RVS_PKTGEN_SIZE", 64)
    local seconds = M.env_num("RVS_PKTGEN_SECONDS", 10)
    local rate = M.env_num("RVS_PKTGEN_RATE", 100)
    local directions = "forward"
    if mode == "nat" then
        directions = M.env_choice("RVS_PKTGEN_DIRECTIONS", "both", { "both", "forward", "reply" })
    end
    if mode == "tun" and size > 1498 then
        error("TUN adds 20 bytes: frames above 1498 B no longer fit a 1500-byte MTU " ..
            "once wrapped (rvsd fragments them or answers ICMP); use RVS_PKTGEN_SIZE <= 1498", 0)
    end
    M.begin(profile, mode)
    M.reset()
    M.establish(mode, size)
    local flows = M.start_established(mode, size, rate, directions)
    M.say("-- established flows: %d B frames at %g%% of line rate, %s, %d s after a 2 s warm-up",
        size, rate, directions, seconds)
    local res = M.measure(flows, seconds, 2)
    M.stop_all()
    M.say("-- result (pktgen's counters; 'delivered' is what rvsd forwarded)")
    local row = M.csv(M.RESULT_COLUMNS)
    for i, f in ipairs(flows) do
        M.report(f.name, res[i], f.frame, f.egress)
        row(M.result_row(profile, mode, f.name, res[i], f.frame, f.egress))
    end
    M.say("   on machine B: 'rvsadm -Ln' shows %d ActiveConn on %s:%d; 'rvsadm stats' the " ..
        "worker's forwarded frames and drops", M.EST_FLOWS, M.RIP_EST, M.RPORT[mode])
    M.finish()
end

return M
