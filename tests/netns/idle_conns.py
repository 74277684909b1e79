#!/usr/bin/env python3
"""Idle HTTP/1.1 keep-alive connections for the HA tests.

    idle_conns.py HOST N TRIGGER

Opens N connections to HOST:80, sends one `GET /` on each and reads the
answer, prints `opened N`, then holds them open, idle, until the file
TRIGGER exists (at most 180 s). Then asks once more on each connection
and prints `verdict: {"ok": .., "resets": .., "failures": [..]}`.
"""
import json
import os
import socket
import sys
import time

from http_answer import read_answer


def ask(s):
    s.sendall(b"GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
    status, body = read_answer(s, 4096)
    return status.decode(), body.decode(errors="replace").strip()


def main():
    host, n, trigger = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    socks = []
    for i in range(n):
        s = socket.create_connection((host, 80), timeout=5)
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
    ok, resets, failures = 0, 0, []
    for i, s in enumerate(socks):
        try:
            status, body = ask(s)
            if status.startswith("HTTP/1.1 200"):
                ok += 1
            else:
                failures.append(f"{i}: {status} {body}")
        except ConnectionResetError as e:
            resets += 1
            failures.append(f"{i}: reset: {e}")
        except Exception as e:  # noqa: BLE001 - every failure is reported
            failures.append(f"{i}: {type(e).__name__}: {e}")
    print("verdict: " + json.dumps({"ok": ok, "resets": resets, "failures": failures}), flush=True)


main()
