#!/usr/bin/env python3
"""Clients from many source addresses, for the cluster tests
(tests/netns/cluster.rs): the router hashes flows on their 5-tuple over
the nodes (ECMP), and rvsd's `mh` scheduler hashes the client's address
over the real servers, so one source address would reach one real server.

    cluster_clients.py hold HOST N TRIGGER SOURCES
        As idle_conns.py: N HTTP/1.1 keep-alive connections to HOST:80, the
        i-th from SOURCES[i % len], one `GET /` each (`open I PORT STATUS
        BODY` per connection, then `opened N`); held idle until the file
        TRIGGER exists (at most 180 s); then one more request on each (all
        sent, then all read, within 10 s in all) and
        `verdict: {"ok": .., "resets": .., "failures": [..]}`.

    cluster_clients.py load HOST SOURCES THREADS INTERVAL TIMEOUT STOP OUT MAX_RUN MAX_REQUESTS
        As tests/netns/mod.rs's load client: THREADS loops of one request
        at a time on a new connection (`Connection: close`), one every
        INTERVAL seconds, the k-th request from SOURCES[k % len]; each
        request one JSON line in OUT (start, end, ok, server, error, port,
        thread, source); stops when the file STOP exists, after MAX_RUN
        seconds, or after MAX_REQUESTS requests in all (0: no limit).

SOURCES is a comma-separated list of the client's addresses.
"""
import itertools
import json
import os
import socket
import sys
import threading
import time

from http_answer import read_answer

REQ_CLOSE = b"GET / HTTP/1.0\r\nHost: rvs-test\r\nConnection: close\r\n\r\n"


REQ_KEEP = b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n"
# How long the held connections' answers may take in all (TCP retransmits
# a lost request after about 1 s, then 3 s).
ANSWER_TIMEOUT = 10


def ask(s):
    s.sendall(REQ_KEEP)
    status, body = read_answer(s, 4096)
    return status.decode(), body.decode(errors="replace").strip()


def hold(host, n, trigger, sources):
    socks = []
    for i in range(n):
        s = socket.create_connection((host, 80), timeout=5, source_address=(sources[i % len(sources)], 0))
        s.settimeout(30)
        status, body = ask(s)
        print(f"open {i} {s.getsockname()[1]} {status} {body}", flush=True)
        socks.append(s)
    print(f"opened {n}", flush=True)
    deadline = time.time() + 180
    while not os.path.exists(trigger):
        if time.time() > deadline:
            print("no trigger within 180 s", flush=True)
            sys.exit(2)
        time.sleep(0.05)
    # Ask on every connection first, then read the answers: a connection
    # that gets no answer costs one timeout in all, not one each.
    ok, resets, failures = 0, 0, []
    asked = []
    for i, s in enumerate(socks):
        try:
            s.sendall(REQ_KEEP)
            asked.append((i, s))
        except ConnectionResetError as e:
            resets += 1
            failures.append(f"{i}: reset: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"{i}: {type(e).__name__}: {e}")
    deadline = time.time() + ANSWER_TIMEOUT
    for i, s in asked:
        try:
            s.settimeout(max(0.01, deadline - time.time()))
            status, body = read_answer(s, 4096)
            status = status.decode()
            if status.startswith("HTTP/1.1 200"):
                ok += 1
            else:
                failures.append(f"{i}: {status} {body!r}")
        except ConnectionResetError as e:
            resets += 1
            failures.append(f"{i}: reset: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"{i}: {type(e).__name__}: {e}")
    print("verdict: " + json.dumps({"ok": ok, "resets": resets, "failures": failures}), flush=True)


def one(host, source, timeout):
    r = {"start": time.time(), "ok": False, "server": "", "error": "", "port": 0, "source": source}
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((source, 0))
        s.connect((host, 80))
        r["port"] = s.getsockname()[1]
        s.sendall(REQ_CLOSE)
        data = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].decode("latin-1")
        if status.split(" ")[1:2] == ["200"] and body:
            r["ok"] = True
            r["server"] = body.decode("latin-1").strip()
        else:
            r["error"] = "answer %r, body %r" % (status, body[:40])
    except Exception as e:  # noqa: BLE001 - every failure is recorded
        r["error"] = "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
    r["end"] = time.time()
    return r


def load(host, sources, threads, interval, timeout, stop_file, out_path, max_run, max_requests):
    deadline = time.time() + max_run
    out = open(out_path, "w")
    lock = threading.Lock()
    counter = itertools.count()

    def loop(k):
        nxt = time.time() + k * interval / threads
        while not os.path.exists(stop_file) and time.time() < deadline:
            with lock:
                seq = next(counter)
            if max_requests and seq >= max_requests:
                return
            d = nxt - time.time()
            if d > 0:
                time.sleep(d)
            r = one(host, sources[seq % len(sources)], timeout)
            r["thread"] = k
            with lock:
                out.write(json.dumps(r) + "\n")
                out.flush()
            nxt = max(nxt + interval, time.time())

    ts = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    print("done", flush=True)


def main():
    mode = sys.argv[1]
    if mode == "hold":
        host, n, trigger, sources = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5].split(",")
        hold(host, n, trigger, sources)
    elif mode == "load":
        a = sys.argv[2:]
        load(a[0], a[1].split(","), int(a[2]), float(a[3]), float(a[4]), a[5], a[6], float(a[7]), int(a[8]))
    else:
        sys.exit(f"unknown mode {mode}")


main()
