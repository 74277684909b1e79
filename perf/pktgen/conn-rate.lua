-- conn-rate.lua: the new-connection rate rvsd sustains, counted by rvsd.
-- Bare SYNs from sources it has not seen, at a set rate, stepped up until
-- the rate of connections rvsd creates stops following the offered rate.
-- Pair with rvsd-nat.toml (or rvsd-dr.toml / rvsd-tun.toml with
-- RVS_PKTGEN_MODE); run it with run-profile, which makes its pcap file
-- (see perf/pktgen/README.md):
--
--   PKTGEN="pktgen -l 0-2 -n 4 -a <A port 0> -a <A port 1> -- -P -m 1.0 -m 2.1" \
--       RVS_PKTGEN_RVSD_STATS="ssh B rvsadm --json stats" perf/pktgen/run-profile conn-rate nat
--
-- Port 0 sends its file: 64-byte bare SYNs to 198.18.0.101:80 (eight real
-- servers, wlc) from RVS_PKTGEN_NEW distinct sources, in order, repeating
-- the file when it ends. For each step: RVS_PKTGEN_SECONDS (4) s, then a
-- pause of RVS_PKTGEN_GAP (12) s, longer than rvsd-*.toml's tcp_syn_s = 10,
-- so the step's half-open connections expire before the next.
--
-- The rate is rvsd's: its conns_created over the step, read with
-- RVS_PKTGEN_RVSD_STATS (required). Forwarded SYNs do not count
-- connections: a SYN repeated on a half-open connection is forwarded
-- too. A step that sends more SYNs than the file has sources repeats
-- sources, whose connections may still be half-open: the profile says so,
-- and that step's rate is bounded by the file, not by rvsd
-- (RVS_PKTGEN_NEW, memory permitting: about 320 bytes per 64-byte frame).
--
-- Stops after two steps in a row below 95% (RVS_PKTGEN_ALL_STEPS=1 runs
-- every step). pktgen paces pcap frames at most at C.pktgen_max_pps(64):
-- 5.79 Mpps on 10GbE.
--
-- Settings (environment): RVS_PKTGEN_MODE (nat), RVS_PKTGEN_STEPS (conn/s,
-- comma-separated), RVS_PKTGEN_SECONDS (4), RVS_PKTGEN_GAP (12),
-- RVS_PKTGEN_ALL_STEPS (0), and those listed in common.lua.

-- common.lua from RVS_PKTGEN_DIR, else from this script's directory.
local here = debug and debug.getinfo and debug.getinfo(1, "S").source:match("^@(.*/)")
local C = dofile((os.getenv("RVS_PKTGEN_DIR") or here or "perf/pktgen") .. "/common.lua")

C.main(function()
    local mode = C.env_choice("RVS_PKTGEN_MODE", "nat", { "nat", "dr", "tun" })
    local steps = C.env_list("RVS_PKTGEN_STEPS", { 100e3, 250e3, 500e3, 1e6, 1.5e6, 2e6, 3e6, 4e6, 5e6 })
    local seconds = C.env_num("RVS_PKTGEN_SECONDS", 4)
    local gap = C.env_num("RVS_PKTGEN_GAP", 12)
    local all_steps = C.env_num("RVS_PKTGEN_ALL_STEPS", 0) ~= 0
    local size = 64

    C.begin("conn-rate", mode)
    if not C.rvsd_available() then
        error("conn-rate counts connections with rvsd's counters: set RVS_PKTGEN_RVSD_STATS " ..
            "to a command printing `rvsadm --json stats`", 0)
    end
    C.stop_all()
    C.say("-- new connections: SYNs -> %s:80 from %d sources, steps of %d s, %d s apart", C.VIP_NEW, C.NEW, seconds, gap)
    local row = C.csv({ "profile", "mode", "target_cps", "offered_syn", "forwarded_syn", "rvsd_conns_created",
        "seconds", "created_per_s", "followed_pct" })
    local flow = { name = "SYN", tx = C.CLIENT, rx = C.SERVER, frame = size }
    local results, short, sent_total = {}, 0, 0
    local created_total, forwarded_total = 0, 0
    for i, target in ipairs(steps) do
        local pps = math.min(target, C.pktgen_max_pps(size))
        C.say("-- step %d: %.0f conn/s offered", i, pps)
        local r, d = C.run_ports({ flow }, pps, seconds)
        r = r[1]
        sent_total = sent_total + r.offered
        created_total = created_total + d.conns_created
        forwarded_total = forwarded_total + d.forwarded
        local followed = r.offered > 0 and 100 * d.conns_created / r.offered or 0
        C.say("   pktgen sent %d SYNs (%.0f/s), port 1 received %d; rvsd created %d connections (%.0f/s, %.1f%% of offered), forwarded %d",
            r.offered, r.offered / seconds, r.delivered, d.conns_created, d.conns_created / seconds, followed, d.forwarded)
        if sent_total > C.NEW then
            C.say("   NOTE: %d SYNs sent so far from a file of %d sources: sources repeat, and a repeat " ..
                "whose connection is still half-open makes none (raise RVS_PKTGEN_NEW)", sent_total, C.NEW)
        end
        row({ "conn-rate", mode, target, r.offered, r.delivered, d.conns_created, seconds, d.conns_created / seconds, followed })
        C.result(string.format("step%d.offered", i), r.offered)
        C.result(string.format("step%d.delivered", i), r.delivered)
        C.result(string.format("step%d.rvsd_conns_created", i), d.conns_created)
        C.result(string.format("step%d.rvsd_forwarded", i), d.forwarded)
        results[#results + 1] = { target = target, offered = r.offered, created = d.conns_created, followed = followed }
        short = followed < 95 and short + 1 or 0
        if short >= 2 and not all_steps then
            C.say("   two steps in a row below 95%%: stopping (RVS_PKTGEN_ALL_STEPS=1 runs them all)")
            break
        end
        if i < #steps then
            C.wait(1000 * gap)
        end
    end
    C.result("steps", #results)
    C.result("created", created_total)
    C.result("forwarded", forwarded_total)

    local knee, best = nil, 0
    for _, e in ipairs(results) do
        if e.followed >= 99 and (knee == nil or e.offered > knee.offered) then
            knee = e
        end
        best = math.max(best, e.created / seconds)
    end
    C.say("-- summary (%s): connections created per second, counted by rvsd", mode)
    C.say("   %12s %12s %12s %9s", "target/s", "offered/s", "created/s", "followed")
    for _, e in ipairs(results) do
        C.say("   %12.0f %12.0f %12.0f %8.1f%%", e.target, e.offered / seconds, e.created / seconds, e.followed)
    end
    if knee then
        C.say("   rvsd created >= 99%% of offered up to %.0f conn/s; most created: %.0f conn/s", knee.offered / seconds, best)
    else
        C.say("   rvsd followed no step to 99%%; most created: %.0f conn/s", best)
    end
    C.finish()
end)
