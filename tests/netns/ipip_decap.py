#!/usr/bin/env python3
"""A user-space IPIP decapsulator for the TUN end-to-end tests.

The kernel the tests run on has no `ipip` module, so a real server cannot
terminate rvsd's IP-in-IP tunnel the usual way (`ip link add tunl0 type
ipip`, VIP on it). This script does the same job in user space, in the real
server's network namespace:

    rvsd --[IPv4 proto 4: outer 10.1.0.1 -> RIP | inner client -> VIP]--> RS

    raw socket (AF_INET, SOCK_RAW, IPPROTO_IPIP)
        receives every protocol-4 packet addressed to this host, outer
        header included (the kernel sends no "protocol unreachable" while a
        raw socket for the protocol is open);
    strip the outer header (its IHL says how long it is) and check the
    inner one;
    write the inner packet into a TUN device (IFF_TUN | IFF_NO_PI, so a
    write is exactly one IP packet) that holds the VIP;
    the kernel receives it there as if it had come in on a wire: it is for
    a local address (the VIP), so it reaches the server socket (nginx on
    0.0.0.0:80).

Replies never come back through here: the server answers from the VIP
through the namespace's ordinary routes (default via the router), straight
to the client, which is the point of LVS tunnelling.

The inner packet's source (the client) is not reachable through the TUN
device, so reverse-path filtering must be off for it: the script sets
`rp_filter=0` on its device; the test harness sets it on `all`.

IPv6 tunnels (RFC 2473): with an IPv6 `--vip`, an IPv6 raw socket for
next header 41 (IPv6-in-IPv6); with an IPv4 `--vip` and `--over6`, an IPv6
raw socket for next header 4 (IPv4-in-IPv6: an IPv4 service whose real
servers rvsd reaches over IPv6). An IPv6 raw socket hands over the payload
alone, the outer header already gone.

Usage (as root, inside the real server's namespace):

    ipip_decap.py --dev ipip0 --vip 203.0.113.100 [--over6] [--mtu 1500]

It creates the device, gives it VIP/32, brings it up, prints one line
`ready: ...` on stdout and then forwards until SIGTERM or SIGINT, when it
prints `stopped: N packets decapsulated, M dropped` and exits 0.
Malformed packets (not IPv4, not protocol 4, a truncated outer or inner
header, an inner packet that is not IPv4) are counted and dropped.
"""

import argparse
import fcntl
import os
import signal
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41


def open_tun(name):
    """Creates TUN device `name` (gone when the descriptor closes)."""
    fd = os.open("/dev/net/tun", os.O_RDWR)
    ifr = struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def sh(*args):
    subprocess.run(args, check=True, timeout=10)


def inner_packet(buf, n):
    """The inner IPv4 packet of the IPIP packet in buf[:n], or None."""
    if n < 20 or buf[0] >> 4 != 4 or buf[9] != IPPROTO_IPIP:
        return None
    ihl = (buf[0] & 0x0F) * 4
    total = (buf[2] << 8) | buf[3]
    if ihl < 20 or total < ihl + 20 or total > n:
        return None
    inner = memoryview(buf)[ihl:total]
    inner_total = (inner[2] << 8) | inner[3]
    if inner[0] >> 4 != 4 or (inner[0] & 0x0F) < 5 or inner_total != len(inner):
        return None
    return inner


def inner_packet6(buf, n):
    """The inner IPv6 packet of an IPv6 raw socket's buf[:n] (the outer
    header is already gone), or None."""
    if n < 40 or buf[0] >> 4 != 6:
        return None
    payload = (buf[4] << 8) | buf[5]
    if 40 + payload != n:
        return None
    return memoryview(buf)[:n]


def inner_packet4in6(buf, n):
    """The inner IPv4 packet of an IPv6 raw socket's buf[:n] (next header
    4, the outer header already gone), or None."""
    if n < 20 or buf[0] >> 4 != 4 or (buf[0] & 0x0F) < 5:
        return None
    if (buf[2] << 8) | buf[3] != n:
        return None
    return memoryview(buf)[:n]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dev", default="ipip0", help="TUN device to create")
    ap.add_argument("--vip", required=True, help="address to put on the device (/32)")
    ap.add_argument("--mtu", type=int, default=1500, help="the device's MTU")
    ap.add_argument("--over6", action="store_true",
                    help="IPv4 VIP, tunnel over IPv6 (next header 4)")
    args = ap.parse_args()

    ipv6 = ":" in args.vip
    if args.over6 and not ipv6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPIP)
        inner_of, prefix = inner_packet4in6, "/32"
    elif ipv6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
        inner_of, prefix = inner_packet6, "/128"
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
        inner_of, prefix = inner_packet, "/32"
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tun = open_tun(args.dev)
    sh("ip", "link", "set", args.dev, "mtu", str(args.mtu))
    if ipv6:
        sh("ip", "-6", "addr", "add", args.vip + prefix, "dev", args.dev, "nodad")
    else:
        sh("ip", "addr", "add", args.vip + prefix, "dev", args.dev)
    sh("ip", "link", "set", args.dev, "up")
    if not ipv6:
        with open("/proc/sys/net/ipv4/conf/%s/rp_filter" % args.dev, "w") as f:
            f.write("0\n")

    counts = {"ok": 0, "dropped": 0}

    def stop(_sig, _frame):
        print("stopped: %d packets decapsulated, %d dropped" % (counts["ok"], counts["dropped"]))
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print("ready: %s holds %s%s, decapsulating" % (args.dev, args.vip, prefix))
    sys.stdout.flush()

    buf = bytearray(65536)
    recv_into = raw.recv_into
    write = os.write
    while True:
        n = recv_into(buf)
        inner = inner_of(buf, n)
        if inner is None:
            counts["dropped"] += 1
            continue
        try:
            write(tun, inner)
            counts["ok"] += 1
        except OSError:
            counts["dropped"] += 1


if __name__ == "__main__":
    main()
