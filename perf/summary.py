#!/usr/bin/env python3
"""The summary table of a perf/run: every goal of the performance work next
to the figure measured, read from the JSON files the benchmarks wrote.

Usage: perf/summary.py [--smoke] DIR   (DIR holds datapath.json,
through_ring.json, echo_ring.json, echo_rate.json; missing or unreadable
ones are reported as not run). --smoke: figures of tiny runs, shown
without verdicts.
"""
import json
import os
import sys


def load_lines(path):
    """A file of one JSON object per line, or one (indented) object; None
    when it is missing or not JSON."""
    try:
        text = open(path).read().strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        pass
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        return None


def num(v):
    """A figure, or NaN for a missing or null one (serde writes NaN as null)."""
    return float(v) if isinstance(v, (int, float)) else float("nan")


def size(n):
    for div, unit in ((1_000_000, "M"), (1_000, "K")):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return str(n)


SMOKE = False


def verdict(ok):
    if SMOKE:
        return "(smoke)"
    return "met" if ok else "NOT met"


def main():
    global SMOKE
    args = sys.argv[1:]
    if args and args[0] == "--smoke":
        SMOKE = True
        args = args[1:]
    if len(args) != 1:
        sys.exit(__doc__)
    d = args[0]
    files = {}
    for name in ("datapath", "through_ring", "echo_ring", "echo_rate"):
        files[name] = load_lines(os.path.join(d, name + ".json"))
    not_run = [n for n, v in files.items() if v is None]
    dp, ring, echo, rate = (files[n] or [] for n in ("datapath", "through_ring", "echo_ring", "echo_rate"))

    matrix = [r for r in dp if r.get("run") == "matrix" and r.get("phase") in ("new", "established")]
    steady = [r for r in dp if r.get("run") == "steady"]
    platform = {r.get("connections"): r for r in dp if r.get("run") == "platform"}
    flood = [r for r in dp if r.get("run") == "flood"]
    against_nat = [r for r in dp if r.get("run") == "v6_vs_nat"]
    rss = [r for r in dp if r.get("run") == "rss"]

    def find(method, conns, phase, dist=None):
        for r in matrix:
            if (r.get("method") == method and r.get("connections") == conns and r.get("phase") == phase
                    and (dist is None or r.get("distribution") == dist)):
                return r
        return None

    rows = []
    sizes = sorted({r["connections"] for r in matrix if isinstance(r.get("connections"), int)})

    # Goal: rvs costs at most 2x the cycles per packet of 5tswap.
    if ring:
        r = ring[0]
        c = num(r.get("ratio_5tswap_over_rvs_cycles"))
        rows.append((f"NAT {size(int(num(r.get('flows')) or 0))} conns through net_ring: 5tswap / rvs cycles per packet",
                     f"{c:.2f} ({num(r.get('reference_cycles_per_packet')):.0f} / "
                     f"{num(r.get('rvs_cycles_per_packet')):.0f} cycles)",
                     ">= 0.5", verdict(c >= 0.5)))
    # Goals: NAT at 1M and 10M against 1K, same run: from the interleaved
    # run (the sizes timed in turns, median of the rounds' ratios) when
    # there is one, else from the matrix.
    inter = next((r for r in dp if r.get("run") == "interleaved"), None)
    small = find("nat", 1_000, "established", "uniform")
    for big, goal in ((1_000_000, 0.85), (10_000_000, 0.75)):
        est = find("nat", big, "established", "uniform")
        ratio_i = ((inter or {}).get("rate_ratio_to_smallest_median") or {}).get(str(big))
        cyc = (inter or {}).get("cycles_per_packet") or {}
        if ratio_i is not None and cyc.get("1000") and cyc.get(str(big)):
            med = lambda v: sorted(v)[len(v) // 2]
            rows.append((f"established NAT uniform: {size(big)} / 1K connections (interleaved, median of {inter.get('rounds')})",
                         f"{num(ratio_i):.2f} ({med(cyc[str(big)]):.0f} / {med(cyc['1000']):.0f} cycles)",
                         f">= {goal}", verdict(num(ratio_i) >= goal)))
        elif small and est:
            ratio = num(est.get("mpps")) / num(small.get("mpps"))
            rows.append((f"established NAT uniform: {size(big)} / 1K connections (datapath)",
                         f"{ratio:.2f} ({num(est.get('mpps')):.2f} / {num(small.get('mpps')):.2f} Mpps)",
                         f">= {goal}", verdict(ratio >= goal)))
    # What the platform allows: a lookup reads two random lines (index,
    # entry); their price at each size against 1K's bounds the ratios above.
    if platform.get(1_000):
        base = num(platform[1_000].get("cycles_per_random_line"))
        for big in (1_000_000, 10_000_000):
            p = platform.get(big)
            if p:
                line = num(p.get("cycles_per_random_line"))
                rows.append((f"platform: random 64-B line (prefetched) in a {size(big)}-table-sized array, vs 1K",
                             f"{line:.0f} vs {base:.0f} cycles: 2 lines add {2 * (line - base):.0f} cycles/packet",
                             "-", "-"))
    # Goal: no packet redirected with RSS, every connection on one worker.
    for n in sorted({r.get("workers") for r in rss if num(r.get("workers")) >= 2}):
        runs = [r for r in rss if r.get("workers") == n]
        red = sum(int(num(r.get("redirected"))) for r in runs)
        rx = sum(int(num(r.get("packets_received"))) for r in runs)
        ok = all(r.get("ownership_ok") is True for r in runs)
        methods = ",".join(sorted({str(r.get("method")) for r in runs}))
        rows.append((f"RSS, {n} workers ({methods}): packets redirected; ownership",
                     f"{red} of {rx}; {'each connection on exactly one worker, RSS' + chr(39) + 's' if ok else 'WRONG'}",
                     "0; one worker each", verdict(red == 0 and ok)))
    # Goal: per-worker rate at 2 workers at least 0.95 of one worker.
    one = [r for r in rss if r.get("workers") == 1 and r.get("method") == "nat"]
    two = [r for r in rss if r.get("workers") == 2 and r.get("method") == "nat" and r.get("concurrent") == 2
           and one and r.get("connections_per_worker") == one[0].get("connections_per_worker")]
    if one and two and one[0].get("mpps_per_worker"):
        base = num(one[0]["mpps_per_worker"][0])
        per = [num(p) for p in two[0].get("mpps_per_worker") or []]
        ratio = min(per) / base if per and base > 0 else float("nan")
        rows.append((f"2 workers vs 1 (RSS, NAT {size(int(num(two[0].get('connections_per_worker'))))} each): slowest / one",
                     f"{ratio:.2f} ({' + '.join(f'{p:.2f}' for p in per)} vs {base:.2f} Mpps)",
                     ">= 0.95", verdict(ratio >= 0.95)))
    # Goals: SYN flood at capacity.
    for f in flood:
        ratio = num(f.get("established_rate_ratio"))
        rounds = f.get("established_rate_ratio_rounds")
        rows.append((f"SYN flood at {size(int(num(f.get('connections'))))} capacity"
                     + (f" (median of {len(rounds)} rounds)" if rounds else "") + ", "
                     f"{num(f.get('syn_share')) * 100:.0f}% SYNs: established rate with / without",
                     f"{ratio:.2f} ({num(f.get('established_mpps_in_flood')):.2f} / "
                     f"{num(f.get('established_mpps_alone')):.2f} Mpps)",
                     ">= 0.90", verdict(ratio >= 0.9)))
        ev = int(num(f.get("evicted_established")))
        fwd, chk = int(num(f.get("established_flows_forwarded_after"))), int(num(f.get("established_flows_checked")))
        rows.append(("SYN flood: established connections evicted (all flows forwarded after)",
                     f"{ev} ({fwd} of {chk} checked packets forwarded)", "0",
                     verdict(ev == 0 and fwd == chk and chk > 0)))
    # Goal: bytes per connection at 10M.
    ten = [r for r in matrix if r.get("connections") == 10_000_000]
    if ten:
        b = max(num(r.get("bytes_per_connection")) for r in ten)
        rows.append(("memory per connection at 10M connections", f"{b:.1f} B ({num(ten[0].get('table_mib')):.0f} MiB)",
                     "<= 100 B", verdict(b <= 100)))
    elif matrix:
        r = max(matrix, key=lambda r: num(r.get("connections")))
        rows.append((f"memory per connection at {size(r['connections'])} (10M not run)",
                     f"{num(r.get('bytes_per_connection')):.1f} B", "<= 100 B at 10M", "-"))
    # Figures without a goal of their own.
    for r in steady:
        rows.append((f"new NAT connections, steady state at a full {size(r['connections'])} table",
                     f"{num(r.get('new_conns_per_s')) / 1e6:.2f} M/s ({num(r.get('cycles_per_packet')):.0f} cycles; "
                     f"refused {int((r.get('drops_by_reason') or {}).get('table_full') or 0)})", "-", "-"))
    if sizes:
        big = 1_000_000 if 1_000_000 in sizes else max(sizes)
        est = find("nat", big, "established", "uniform")
        if est:
            rows.append((f"established NAT, {size(big)} connections, uniform (datapath)",
                         f"{num(est.get('mpps')):.2f} Mpps ({num(est.get('cycles_per_packet')):.0f} cycles/packet)",
                         "-", "-"))
        new = find("nat", big, "new")
        if new:
            rows.append((f"new NAT connections into an empty {size(big)} table (datapath)",
                         f"{num(new.get('new_conns_per_s')) / 1e6:.2f} M/s", "-", "-"))
    # IPv6 against IPv4 NAT, timed in turns (datapath run: v6_vs_nat).
    for r in sorted(against_nat, key=lambda r: num(r.get("connections"))):
        n = size(int(num(r.get("connections"))))
        new_c = r.get("new_cycles_per_packet_median") or {}
        est_c = r.get("established_cycles_per_packet_median") or {}
        new_r = r.get("new_rate_ratio_to_nat_median") or {}
        for m, est in (r.get("established_rate_ratio_to_nat_median") or {}).items():
            rows.append((f"IPv6 {m} / IPv4 NAT rate at {n} conns (in turns, median of rounds): new; established",
                         f"{num(new_r.get(m)):.2f} ({num(new_c.get(m)):.0f} / {num(new_c.get('nat')):.0f} cycles); "
                         f"{num(est):.2f} ({num(est_c.get(m)):.0f} / {num(est_c.get('nat')):.0f} cycles)",
                         "-", "-"))
    # IPv6 NAT at its largest size against 1K (one run, matrix).
    small6 = find("nat6", 1_000, "established", "uniform")
    for big in (1_000_000, 10_000_000):
        est6 = find("nat6", big, "established", "uniform")
        if small6 and est6:
            rows.append((f"established IPv6 NAT uniform: {size(big)} / 1K connections (datapath)",
                         f"{num(est6.get('mpps')) / num(small6.get('mpps')):.2f} "
                         f"({num(est6.get('cycles_per_packet')):.0f} / {num(small6.get('cycles_per_packet')):.0f} cycles)",
                         "-", "-"))
    if ring:
        r = ring[0]
        rows.append((f"through net_ring: rvs / 5tswap Mpps (reference reflected)",
                     f"{num(r.get('ratio_rvs_over_5tswap')):.2f} ({num(r.get('rvs_mpps')):.2f} / "
                     f"{num(r.get('reference_mpps')):.2f} Mpps)", "-", "-"))
        for load in ("low_load", "loaded"):
            lat = ((r.get("latency_ns") or {}).get(load) or {})
            a = lat.get("added") or {}
            inflight = r.get("latency_in_flight") if load == "low_load" else r.get("in_flight")
            if a:
                rows.append((f"latency added by rvs, {inflight} in flight (p50 / p99 / p99.9)",
                             f"{num(a.get('p50')) / 1000:.1f} / {num(a.get('p99')) / 1000:.1f} / "
                             f"{num(a.get('p99_9')) / 1000:.1f} us", "-", "-"))
            elif lat.get("rvs"):
                v = lat["rvs"]
                rows.append((f"latency through rvs, {inflight} in flight (p50 / p99 / p99.9)",
                             f"{num(v.get('p50')) / 1000:.1f} / {num(v.get('p99')) / 1000:.1f} / "
                             f"{num(v.get('p99_9')) / 1000:.1f} us", "-", "-"))
    if echo:
        e = echo[0]
        rows.append(("ICMP echo, net_ring: rvs / MAC swap",
                     f"{num(e.get('ratio_rvs_over_macswap')):.2f} ({num(e.get('rvs_pps')) / 1e6:.2f} / "
                     f"{num(e.get('macswap_pps')) / 1e6:.2f} Mpps)",
                     "-", "-"))
    if rate:
        e = rate[0]
        rows.append(("ICMP echo, net_pcap: rvs / dpdk-testpmd macswap",
                     f"{num(e.get('ratio_rvs_over_testpmd')):.2f} ({num(e.get('rvs_pps')) / 1e6:.2f} / "
                     f"{num(e.get('testpmd_macswap_pps')) / 1e6:.2f} Mpps)",
                     "-", "-"))
    for n in not_run:
        rows.append((f"{n}: not run (no readable {n}.json)", "-", "-", "-"))

    print("Goals (ratios measured in one run; 64-byte frames)" + (" -- smoke run: tiny sizes, no verdicts" if SMOKE else ""))
    widths = [max(len(str(row[i])) for row in rows + [("what", "measured", "goal", "")]) for i in range(4)]
    head = ("what", "measured", "goal", "")
    for row in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())

    if matrix:
        print()
        print("Datapath (Mpps of one worker, frame writing excluded; new = M connections/s into an empty table;")
        print("cycles = TSC cycles per packet, uniform)")
        print(f"{'method':<7}{'conns':>7}{'new':>8}{'uniform':>9}{'zipf':>8}{'cycles':>8}{'B/conn':>8}")
        for m in ("nat", "dr", "tun", "fullnat", "nat6", "dr6", "tun6"):
            for n in sizes:
                new = find(m, n, "new")
                u = find(m, n, "established", "uniform")
                z = find(m, n, "established", "zipf")
                if not (new or u or z):
                    continue
                bpc = num((new or u or z).get("bytes_per_connection"))
                print(f"{m:<7}{size(n):>7}"
                      f"{(num(new.get('new_conns_per_s')) / 1e6 if new else float('nan')):>8.2f}"
                      f"{(num(u.get('mpps')) if u else float('nan')):>9.2f}"
                      f"{(num(z.get('mpps')) if z else float('nan')):>8.2f}"
                      f"{(num(u.get('cycles_per_packet')) if u else float('nan')):>8.0f}{bpc:>8.1f}")


if __name__ == "__main__":
    main()
