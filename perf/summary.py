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
    scaling = [r for r in dp if r.get("run") == "scaling"]

    def find(method, conns, phase, dist=None):
        for r in matrix:
            if (r.get("method") == method and r.get("connections") == conns and r.get("phase") == phase
                    and (dist is None or r.get("distribution") == dist)):
                return r
        return None

    rows = []
    sizes = sorted({r["connections"] for r in matrix if isinstance(r.get("connections"), int)})
    big = 1_000_000 if 1_000_000 in sizes else (max(sizes) if sizes else None)
    if big is not None:
        est = find("nat", big, "established", "uniform")
        if est:
            rows.append((f"established NAT, {size(big)} connections, uniform (datapath)",
                         f"{num(est.get('mpps')):.2f} Mpps ({num(est.get('ns_per_packet')):.1f} ns/packet)",
                         ">= 15 Mpps", verdict(num(est.get("mpps")) >= 15)))
        new = find("nat", big, "new")
        if new:
            rows.append((f"new NAT connections, {size(big)} in the table (datapath)",
                         f"{num(new.get('new_conns_per_s')) / 1e6:.2f} M/s", ">= 2 M/s",
                         verdict(num(new.get("new_conns_per_s")) >= 2e6)))
    if matrix:
        worst = max(num(r.get("bytes_per_connection")) for r in matrix)
        rows.append(("memory per connection (worst table size)", f"{worst:.1f} B", "<= 128 B",
                     verdict(worst <= 128)))
        ten = [r for r in matrix if num(r.get("connections")) >= 10_000_000]
        if ten:
            mib = max(num(r.get("table_mib")) for r in ten)
            rows.append((f"{size(ten[0]['connections'])} connections, one worker's table", f"{mib:.0f} MiB",
                         "< 2048 MiB", verdict(mib < 2048)))
    if ring:
        r = ring[0]
        ratio = num(r.get("ratio_rvs_over_5tswap"))
        rows.append((f"through DPDK (net_ring), {size(int(num(r.get('flows')) or 0))} connections: rvs / 5tswap",
                     f"{ratio:.2f} ({num(r.get('rvs_mpps')):.2f} / {num(r.get('reference_mpps')):.2f} Mpps)",
                     ">= 0.5", verdict(ratio >= 0.5)))
        for load in ("low_load", "loaded"):
            a = ((r.get("latency_ns") or {}).get(load) or {}).get("added") or {}
            if a:
                inflight = r.get("latency_in_flight") if load == "low_load" else r.get("in_flight")
                rows.append((f"latency added by rvs, {inflight} in flight (p50 / p99 / p99.9)",
                             f"{num(a.get('p50')) / 1000:.1f} / {num(a.get('p99')) / 1000:.1f} / "
                             f"{num(a.get('p99_9')) / 1000:.1f} us",
                             "-", "-"))
    for r in scaling:
        if r.get("workers") == 2 and r.get("mpps_per_worker"):
            one = [s for s in scaling if s.get("workers") == 1 and s.get("distribution") == r.get("distribution")
                   and s.get("connections") == r.get("connections")]
            if one and num(one[0].get("mpps")) > 0:
                per = [num(p) for p in r["mpps_per_worker"]]
                ratio = min(per) / num(one[0].get("mpps"))
                rows.append((f"2 workers vs 1, NAT {size(r['connections'])} {r.get('distribution')}: per worker",
                             f"{' + '.join(f'{p:.2f}' for p in per)} vs {num(one[0].get('mpps')):.2f} Mpps "
                             f"(slowest/1 = {ratio:.2f})",
                             "per-worker rate holds", verdict(ratio >= 0.9)))
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

    print("Goals (one worker core, 64-byte frames)" + (" -- smoke run: tiny sizes, no verdicts" if SMOKE else ""))
    widths = [max(len(str(row[i])) for row in rows + [("what", "measured", "goal", "")]) for i in range(4)]
    head = ("what", "measured", "goal", "")
    for row in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())

    if matrix:
        print()
        print("Datapath (Mpps per core including the generator; new = M connections/s)")
        print(f"{'method':<7}{'conns':>7}{'new':>8}{'uniform':>9}{'zipf':>8}{'B/conn':>8}")
        for m in ("nat", "dr", "tun"):
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
                      f"{(num(z.get('mpps')) if z else float('nan')):>8.2f}{bpc:>8.1f}")


if __name__ == "__main__":
    main()
