#!/usr/bin/env python3
"""The summary table of a perf/run: every goal of the performance work next
to the figure measured, read from the JSON files the benchmarks wrote.

Usage: perf/summary.py DIR   (DIR holds datapath.json, through_ring.json,
echo_ring.json, echo_rate.json; missing ones are reported as not run)
"""
import json
import os
import sys


def load_lines(path):
    """A file of one JSON object per line, or one (indented) object."""
    if not os.path.exists(path):
        return []
    text = open(path).read().strip()
    if not text:
        return []
    try:
        return [json.loads(text)]
    except json.JSONDecodeError:
        return [json.loads(line) for line in text.splitlines() if line.strip()]


def size(n):
    for div, unit in ((1_000_000, "M"), (1_000, "K")):
        if n >= div and n % div == 0:
            return f"{n // div}{unit}"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f}M"
    return str(n)


def verdict(ok):
    return "met" if ok else "NOT met"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    dp = load_lines(os.path.join(d, "datapath.json"))
    ring = load_lines(os.path.join(d, "through_ring.json"))
    echo = load_lines(os.path.join(d, "echo_ring.json"))
    rate = load_lines(os.path.join(d, "echo_rate.json"))

    matrix = [r for r in dp if r.get("run") == "matrix"]
    scaling = [r for r in dp if r.get("run") == "scaling"]

    def find(method, conns, phase, dist=None):
        for r in matrix:
            if (r["method"] == method and r["connections"] == conns and r["phase"] == phase
                    and (dist is None or r["distribution"] == dist)):
                return r
        return None

    rows = []
    sizes = sorted({r["connections"] for r in matrix})
    big = 1_000_000 if 1_000_000 in sizes else (max(sizes) if sizes else None)
    if big is not None:
        est = find("nat", big, "established", "uniform")
        if est:
            rows.append((f"established NAT, {size(big)} connections, uniform (datapath)",
                         f"{est['mpps']:.2f} Mpps ({est['ns_per_packet']:.1f} ns/packet)", ">= 15 Mpps",
                         verdict(est["mpps"] >= 15)))
        new = find("nat", big, "new")
        if new:
            rows.append((f"new NAT connections, {size(big)} in the table (datapath)",
                         f"{new['new_conns_per_s'] / 1e6:.2f} M/s", ">= 2 M/s",
                         verdict(new["new_conns_per_s"] >= 2e6)))
    if matrix:
        worst = max(r["bytes_per_connection"] for r in matrix)
        rows.append(("memory per connection (worst table size)", f"{worst:.1f} B", "<= 128 B",
                     verdict(worst <= 128)))
        ten = [r for r in matrix if r["connections"] >= 10_000_000]
        if ten:
            mib = max(r["table_mib"] for r in ten)
            rows.append((f"{size(ten[0]['connections'])} connections, one worker's table", f"{mib:.0f} MiB",
                         "< 2048 MiB", verdict(mib < 2048)))
    if ring:
        r = ring[0]
        rows.append((f"through DPDK (net_ring), {size(r['flows'])} connections: rvs / 5tswap",
                     f"{r['ratio_rvs_over_5tswap']:.2f} ({r['rvs_mpps']:.2f} / {r['reference_mpps']:.2f} Mpps)",
                     ">= 0.5", verdict(r["ratio_rvs_over_5tswap"] >= 0.5)))
        for load in ("low_load", "loaded"):
            lat = r["latency_ns"][load]
            a = lat.get("added") or {}
            if a:
                inflight = r["latency_in_flight"] if load == "low_load" else r["in_flight"]
                rows.append((f"latency added by rvs, {inflight} in flight (p50 / p99 / p99.9)",
                             f"{a['p50'] / 1000:.1f} / {a['p99'] / 1000:.1f} / {a['p99_9'] / 1000:.1f} us",
                             "-", "-"))
    for r in scaling:
        if r["workers"] == 2 and r.get("mpps_per_worker"):
            one = [s for s in scaling if s["workers"] == 1 and s["distribution"] == r["distribution"]
                   and s["connections"] == r["connections"]]
            if one:
                per = r["mpps_per_worker"]
                ratio = min(per) / one[0]["mpps"]
                rows.append((f"2 workers vs 1, NAT {size(r['connections'])} {r['distribution']}: per worker",
                             f"{' + '.join(f'{p:.2f}' for p in per)} vs {one[0]['mpps']:.2f} Mpps "
                             f"(slowest/1 = {ratio:.2f})",
                             "per-worker rate holds", verdict(ratio >= 0.9)))
    if echo:
        e = echo[0]
        rows.append(("ICMP echo, net_ring: rvs / MAC swap",
                     f"{e['ratio_rvs_over_macswap']:.2f} ({e['rvs_pps'] / 1e6:.2f} / {e['macswap_pps'] / 1e6:.2f} Mpps)",
                     "-", "-"))
    if rate:
        e = rate[0]
        rows.append(("ICMP echo, net_pcap: rvs / dpdk-testpmd macswap",
                     f"{e['ratio_rvs_over_testpmd']:.2f} ({e['rvs_pps'] / 1e6:.2f} / {e['testpmd_macswap_pps'] / 1e6:.2f} Mpps)",
                     "-", "-"))

    print("Goals (one worker core, 64-byte frames)")
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
                bpc = (new or u or z)["bytes_per_connection"]
                print(f"{m:<7}{size(n):>7}"
                      f"{(new['new_conns_per_s'] / 1e6 if new else float('nan')):>8.2f}"
                      f"{(u['mpps'] if u else float('nan')):>9.2f}"
                      f"{(z['mpps'] if z else float('nan')):>8.2f}{bpc:>8.1f}")


if __name__ == "__main__":
    main()
