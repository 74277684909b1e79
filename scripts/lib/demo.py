#!/usr/bin/env python3
"""Helpers of scripts/demo: a small HTTP load generator and the live view.

  demo.py load  --vip IP --port N --seconds S --concurrency C --out FILE
      Runs in the client namespace. C threads each make HTTP GETs through
      the VIP, one TCP connection per request (so every request is a new
      connection the balancer schedules), and count the answers by the
      real server's name in the body. Writes the counts to FILE as JSON
      twice a second and at the end.

  demo.py view  --counts FILE --rvsadm PATH --socket PATH --seconds S --weights a=3,b=2
      Runs beside rvsd. Once a second prints one line: requests answered
      per real server (by the client's count), connections rvsd tracks per
      real server, packets per second in and out of rvsd, drops. Ends when
      the load's FILE says done, then prints a summary.
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time


def load(a):
    counts = {}
    errors = 0
    lock = threading.Lock()
    stop = time.time() + a.seconds

    def worker():
        nonlocal errors
        while time.time() < stop:
            try:
                c = http.client.HTTPConnection(a.vip, a.port, timeout=3)
                c.request("GET", "/", headers={"Connection": "close"})
                r = c.getresponse()
                body = r.read().decode(errors="replace").strip()
                c.close()
                key = body if r.status == 200 else "http_%d" % r.status
                with lock:
                    counts[key] = counts.get(key, 0) + 1
            except Exception:
                with lock:
                    errors += 1
                time.sleep(0.05)

    def write(done):
        with lock:
            doc = {"answers": dict(counts), "errors": errors, "done": done, "t": time.time()}
        tmp = a.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(doc, f)
        os.replace(tmp, a.out)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        write(False)
        time.sleep(0.5)
    write(True)


def rvsadm(a, *args):
    out = subprocess.run([a.rvsadm, "--socket", a.socket, "--json", *args],
                         capture_output=True, text=True, timeout=5)
    if out.returncode != 0:
        return None
    return json.loads(out.stdout)


def read_counts(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {"answers": {}, "errors": 0, "done": False}


def view(a):
    weights = dict(kv.split("=") for kv in a.weights.split(",")) if a.weights else {}
    names = list(weights) or ["rs1", "rs2", "rs3"]
    print("   %4s  %7s  %s  %s  %9s %9s  %5s" % (
        "t(s)", "req/s", "  ".join("%-13s" % ("%s answered" % n) for n in names),
        "  ".join("%-9s" % ("%s conns" % n) for n in names), "pps in", "pps out", "drops"))
    prev_total, prev_stats, prev_t = 0, None, time.time()
    start = time.time()
    counts = read_counts(a.counts)
    tick = 0
    while True:
        tick += 1
        time.sleep(max(0.0, start + tick - time.time()))
        now = time.time()
        counts = read_counts(a.counts)
        answers = counts.get("answers", {})
        total = sum(answers.values())
        stats = rvsadm(a, "stats")
        lst = rvsadm(a, "list")
        conns = {}
        if lst:
            for vs in lst["virtual_servers"]:
                for i, rs in enumerate(vs["real_servers"]):
                    name = names[i] if i < len(names) else rs["address"]
                    conns[name] = rs["active_conns"] + rs["inactive_conns"]
        pps_in = pps_out = 0
        drops = 0
        if stats:
            t = stats["total"]
            drops = sum(t["drops"].values())
            if prev_stats:
                dt = now - prev_t
                pps_in = (t["rx_packets"] - prev_stats["rx_packets"]) / dt
                pps_out = (t["tx_packets"] - prev_stats["tx_packets"]) / dt
            prev_stats = t
        print("   %4.0f  %7.0f  %s  %s  %9.0f %9.0f  %5d" % (
            now - start, (total - prev_total) / (now - prev_t),
            "  ".join("%-13d" % answers.get(n, 0) for n in names),
            "  ".join("%-9d" % conns.get(n, 0) for n in names),
            pps_in, pps_out, drops), flush=True)
        prev_total, prev_t = total, now
        if counts.get("done") or now - start > a.seconds + 10:
            break
    answers = counts.get("answers", {})
    total = sum(answers.values())
    wsum = sum(int(w) for w in weights.values()) or 1
    print()
    print("   Summary: %d requests answered, %d failed, in about %d s" % (
        total, counts.get("errors", 0), a.seconds))
    for n in names:
        got = answers.get(n, 0)
        share = 100.0 * got / total if total else 0
        want = 100.0 * int(weights.get(n, 1)) / wsum
        print("     %-4s answered %6d requests = %5.1f%%   (weight %s of %d: %5.1f%%)" % (
            n, got, share, weights.get(n, "1"), wsum, want))
    others = {k: v for k, v in answers.items() if k not in names}
    if others:
        print("     other answers: %s" % others)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    l = sub.add_parser("load")
    l.add_argument("--vip", required=True)
    l.add_argument("--port", type=int, default=80)
    l.add_argument("--seconds", type=float, default=20)
    l.add_argument("--concurrency", type=int, default=8)
    l.add_argument("--out", required=True)
    v = sub.add_parser("view")
    v.add_argument("--counts", required=True)
    v.add_argument("--rvsadm", required=True)
    v.add_argument("--socket", required=True)
    v.add_argument("--seconds", type=float, default=20)
    v.add_argument("--weights", default="")
    a = ap.parse_args()
    {"load": load, "view": view}[a.cmd](a)


if __name__ == "__main__":
    main()
