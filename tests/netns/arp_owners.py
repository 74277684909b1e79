#!/usr/bin/env python3
"""Who answers ARP for an address, over time (the HA split-brain test).

    arp_owners.py DEV MY_IP TARGET_IP SECONDS

Every 100 ms, sends an ARP request for TARGET_IP from DEV (as MY_IP) and
collects the replies that arrive within the next 100 ms. Prints
`ready` once the socket is open, and at the end one JSON line:
`probes: [[t, ["mac", ...]], ...]` (t in seconds from the first probe).
"""
import json
import select
import socket
import struct
import sys
import time


def main():
    dev, my_ip, target, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
    s.bind((dev, 0))
    mac = s.getsockname()[4]
    request = (
        b"\xff" * 6 + mac + b"\x08\x06"
        + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
        + mac + socket.inet_aton(my_ip) + b"\x00" * 6 + socket.inet_aton(target)
    )
    print("ready", flush=True)
    probes = []
    start = time.time()
    while time.time() - start < secs:
        sent = time.time()
        s.send(request)
        macs = set()
        while True:
            left = sent + 0.1 - time.time()
            if left <= 0:
                break
            if not select.select([s], [], [], left)[0]:
                continue
            f = s.recv(128)
            if len(f) < 42 or f[12:14] != b"\x08\x06":
                continue
            op = struct.unpack("!H", f[20:22])[0]
            if op == 2 and f[28:32] == socket.inet_aton(target):
                macs.add(f[22:28].hex(":"))
        probes.append([round(sent - start, 3), sorted(macs)])
    print("probes: " + json.dumps(probes), flush=True)


main()
