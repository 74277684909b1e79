#!/usr/bin/env python3
"""Writes the frames a pktgen profile sends, as pcap files for `pktgen -s`.

Why pcap files and not pktgen's range mode: pktgen builds its range frames
once per start into its transmit pool and sends whatever buffers the pool
hands back. On Pktgen-DPDK 23.03 that was 24,576 frames, never the
million-flow walk the range described; on 24.07.1 the pool has a per-lcore
cache, so with a driver that frees each buffer as soon as it is sent
(net_af_packet) the same 32 buffers go out again and again. A
pcap file is loaded into a pool without a cache, and a pool without a cache
is a FIFO ring: pktgen sends the file's frames in the file's order, and
repeats the file. So the file decides exactly which flows exist, and each
profile can send an exact prefix of it with `set <port> count`. (24.07.1
drops -s files unless patched by fix-pktgen-pcap.)

Files (all frames untagged Ethernet + IPv4 + TCP with correct checksums,
padded to the frame size minus the 4-byte FCS):

  est-syn-ack-*.pcap   port 0, established profiles: one bare SYN per flow
                       (the SYN phase, sent once with a count), then
                       ACK_PASSES passes of one ACK-only frame per flow.
  est-reply-*.pcap     port 1, NAT: the real server's ACK-only reply per
                       flow, 198.19.0.10:8080 -> client.
  flood-*.pcap         port 0, syn-flood.lua (NAT): the established flows'
                       SYNs, then NEW bare SYNs from distinct sources.
  new-*.pcap           port 0, conn-rate.lua and syn-flood.lua (DR, TUN):
                       NEW bare SYNs from distinct sources.

Addresses are those of common.lua and rvsd-*.toml. Flow k of the
established set is client 198.18.64.(k mod 16), port 1024 + k div 16;
new sources walk 32,000 addresses (198.18.128.1 up, 250 per /24)
times ports from 1024 -- see new_source().

Usage: make-pcaps.py PROFILE MODE OUTDIR   (settings from the environment,
as the profiles read them: RVS_PKTGEN_FLOWS, RVS_PKTGEN_NEW,
RVS_PKTGEN_SIZE, RVS_PKTGEN_ACK_PASSES, RVS_PKTGEN_CLIENT_PORT,
RVS_PKTGEN_SERVER_PORT). Prints pktgen's `-s` arguments.
Only the Python 3 standard library.
"""

import os
import struct
import sys

RVS_OUTSIDE_MAC = bytes.fromhex("020000000b00")
RVS_INSIDE_MAC = bytes.fromhex("020000000b01")
CLIENTS_ROUTER_MAC = bytes.fromhex("020000000a00")  # pktgen port 0
REAL_SERVERS_MAC = bytes.fromhex("020000000a01")  # pktgen port 1
VIP_EST = (198, 18, 0, 100)
VIP_NEW = (198, 18, 0, 101)
VPORT = 80
RIP_EST = (198, 19, 0, 10)
RPORT_NAT = 8080
SYN, ACK = 0x02, 0x10


def env_int(name, default):
    v = os.environ.get(name, "")
    return int(v) if v else default


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def frame(dst_mac, src_mac, src, dst, sport, dport, flags, size):
    """One Ethernet frame of `size` bytes with its FCS (which is not stored)."""
    src, dst = bytes(src), bytes(dst)
    payload = b"\0" * max(0, size - 4 - 14 - 20 - 20)
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 1 if flags & ACK else 0, 5 << 4, flags, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp + payload)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return dst_mac + src_mac + b"\x08\x00" + ip + tcp + payload


def est_client(k):
    """Flow k of the established set: (client address, client port)."""
    return (198, 18, 64, k % 16), 1024 + k // 16


def new_source(k):
    """New source k: addresses 198.18.128.1 up, 250 per /24, ports from 1024."""
    a = k % 32000
    return (198, 18, 128 + a // 250, 1 + a % 250), 1024 + k // 32000


def write(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for fr in frames:
            f.write(struct.pack("<IIII", 0, 0, len(fr), len(fr)))
            f.write(fr)


def client_est(n, flags, size):
    for k in range(n):
        ip, port = est_client(k)
        yield frame(RVS_OUTSIDE_MAC, CLIENTS_ROUTER_MAC, ip, VIP_EST, port, VPORT, flags, size)


def server_est(n, size):
    for k in range(n):
        ip, port = est_client(k)
        yield frame(RVS_INSIDE_MAC, REAL_SERVERS_MAC, RIP_EST, ip, RPORT_NAT, port, ACK, size)


def client_new(n, size):
    for k in range(n):
        ip, port = new_source(k)
        yield frame(RVS_OUTSIDE_MAC, CLIENTS_ROUTER_MAC, ip, VIP_NEW, port, VPORT, SYN, size)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    profile, mode, out = sys.argv[1:]
    flows = env_int("RVS_PKTGEN_FLOWS", 4096)
    new = env_int("RVS_PKTGEN_NEW", 65536)
    size = env_int("RVS_PKTGEN_SIZE", 64)
    passes = env_int("RVS_PKTGEN_ACK_PASSES", max(1, -(-24576 // flows)))
    if not 64 <= size <= 1518:
        sys.exit("RVS_PKTGEN_SIZE must be 64..1518")
    if flows > 16 * 64511:
        sys.exit("RVS_PKTGEN_FLOWS: at most 1,032,176")
    os.makedirs(out, exist_ok=True)
    client = env_int("RVS_PKTGEN_CLIENT_PORT", 0)
    server = env_int("RVS_PKTGEN_SERVER_PORT", 1)
    args = []
    if profile in ("established-nat", "dr", "tun", "frame-sizes"):
        p0 = os.path.join(out, f"est-syn-ack-{flows}-{passes}-{size}.pcap")
        write(p0, [*client_est(flows, SYN, size), *(f for _ in range(passes) for f in client_est(flows, ACK, size))])
        args.append(f"{client}:{p0}")
        if mode == "nat":
            p1 = os.path.join(out, f"est-reply-{flows}-{size}.pcap")
            write(p1, server_est(flows, size))
            args.append(f"{server}:{p1}")
    elif profile == "syn-flood":
        if mode == "nat":
            p0 = os.path.join(out, f"flood-{flows}-{new}-64.pcap")
            write(p0, [*client_est(flows, SYN, 64), *client_new(new, 64)])
            p1 = os.path.join(out, f"est-reply-{flows}-64.pcap")
            write(p1, server_est(flows, 64))
            args += [f"{client}:{p0}", f"{server}:{p1}"]
        else:
            p0 = os.path.join(out, f"new-{new}-64.pcap")
            write(p0, client_new(new, 64))
            args.append(f"{client}:{p0}")
    elif profile == "conn-rate":
        p0 = os.path.join(out, f"new-{new}-64.pcap")
        write(p0, client_new(new, 64))
        args.append(f"{client}:{p0}")
    else:
        sys.exit(f"unknown profile {profile}")
    print(" ".join(f"-s {a}" for a in args))


if __name__ == "__main__":
    main()
