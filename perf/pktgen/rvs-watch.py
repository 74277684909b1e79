#!/usr/bin/env python3
"""Per-second rates of a running rvsd, for the Pktgen-DPDK tests.

Run on machine B next to rvsd while a profile runs on machine A:

    python3 perf/pktgen/rvs-watch.py --config perf/pktgen/rvsd-nat.toml
    python3 perf/pktgen/rvs-watch.py --socket /run/rvs/rvsd.sock --csv run.csv

Every interval it reads `rvsadm --json stats` (the workers' counters summed
in "total") and prints what changed, per second: frames received and sent,
frames forwarded, connections created, the connections in the table, the
share of polls that found frames (busy: 100% means the worker never waits)
and every drop reason that moved. Compare "rx" with pktgen's transmit rate:
frames pktgen sent that rvsd never received were lost in machine B's NIC
(receive ring full: the worker is the bottleneck). Stop it with Ctrl-C.

Only the Python 3 standard library; rvsadm must be able to reach the socket
(root, as rvsd's socket is mode 0600).
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

COUNTERS = ("rx_packets", "tx_packets", "forwarded", "conns_created", "redirected")


def default_rvsadm():
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "target", "release", "rvsadm")
    if os.access(built, os.X_OK):
        return os.path.normpath(built)
    return shutil.which("rvsadm") or "rvsadm"


def read_stats(cmd):
    """The "total" object of `rvsadm --json stats`."""
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip() or 'exit ' + str(out.returncode)}")
    doc = json.loads(out.stdout)
    return doc["total"]


def rates(prev, cur, dt):
    r = {k: (cur.get(k, 0) - prev.get(k, 0)) / dt for k in COUNTERS}
    busy = cur.get("busy_polls", 0) - prev.get("busy_polls", 0)
    idle = cur.get("idle_polls", 0) - prev.get("idle_polls", 0)
    r["busy_pct"] = 100.0 * busy / (busy + idle) if busy + idle else 0.0
    r["connections"] = cur.get("connections", 0)
    drops = {}
    for reason, n in cur.get("drops", {}).items():
        d = n - prev.get("drops", {}).get(reason, 0)
        if d:
            drops[reason] = d / dt
    r["drops"] = drops
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rvsadm", default=default_rvsadm(), help="rvsadm binary (default: target/release/rvsadm, else PATH)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--socket", help="rvsd's control socket")
    where.add_argument("--config", help="rvsd's config (its control.socket is used)")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between readings (default 1)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many lines (default: run until Ctrl-C)")
    ap.add_argument("--csv", help="also append each line to this CSV file")
    args = ap.parse_args()

    cmd = [args.rvsadm]
    if args.socket:
        cmd += ["--socket", args.socket]
    elif args.config:
        cmd += ["--config", args.config]
    cmd += ["--json", "stats"]

    writer = None
    csv_file = None
    if args.csv:
        csv_file = open(args.csv, "a", newline="")
        writer = csv.writer(csv_file)
        if csv_file.tell() == 0:
            writer.writerow(["time", "rx_pps", "tx_pps", "forwarded_pps", "conns_created_per_s",
                             "connections", "busy_pct", "drops_per_s"])

    header = (f"{'time':>8} {'rx Mpps':>8} {'tx Mpps':>8} {'fwd Mpps':>8} {'new conn/s':>11} "
              f"{'conns':>10} {'busy':>5}  drops/s")
    try:
        prev = read_stats(cmd)
        t_prev = time.monotonic()
        lines = 0
        while args.count == 0 or lines < args.count:
            time.sleep(max(0.0, args.interval - (time.monotonic() - t_prev)))
            cur = read_stats(cmd)
            t_cur = time.monotonic()
            r = rates(prev, cur, t_cur - t_prev)
            prev, t_prev = cur, t_cur
            if lines % 20 == 0:
                print(header)
            drops = ", ".join(f"{k} {v:,.0f}" for k, v in sorted(r["drops"].items())) or "-"
            stamp = time.strftime("%H:%M:%S")
            print(f"{stamp:>8} {r['rx_packets'] / 1e6:8.3f} {r['tx_packets'] / 1e6:8.3f} "
                  f"{r['forwarded'] / 1e6:8.3f} {r['conns_created']:11,.0f} {r['connections']:10,d} "
                  f"{r['busy_pct']:4.0f}%  {drops}", flush=True)
            if writer:
                writer.writerow([stamp, round(r["rx_packets"]), round(r["tx_packets"]), round(r["forwarded"]),
                                 round(r["conns_created"]), r["connections"], round(r["busy_pct"], 1),
                                 json.dumps({k: round(v) for k, v in r["drops"].items()}, sort_keys=True)])
                csv_file.flush()
            lines += 1
    except KeyboardInterrupt:
        pass
    except (RuntimeError, ValueError, KeyError, subprocess.TimeoutExpired) as e:
        print(f"rvs-watch: {e}", file=sys.stderr)
        return 1
    finally:
        if csv_file:
            csv_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
