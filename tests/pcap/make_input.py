#!/usr/bin/env python3
"""Writes the input of the net_pcap test: a pcap of ARP, ICMP and junk frames
for rvsd (192.0.2.1, 02:00:00:00:00:01), and a manifest that says, for every
frame, what rvsd must do with it:

  "arp_reply"   answer with an ARP reply
  "echo_reply"  answer with an ICMP echo reply
  "consumed"    take it without answering and without counting a drop
                (an ARP reply to us: the sender is learned)
  "drop"        drop it, counted under "reason"

judge.py checks the output pcap against the manifest; the Rust test checks
rvsd's counters against it. Built with scapy only, never with rvs's parser.

usage: make_input.py INPUT.pcap MANIFEST.json
"""

import json
import random
import sys

from scapy.all import (  # noqa: E402  (scapy's usual import)
    ARP,
    ICMP,
    IP,
    UDP,
    Dot1Q,
    Ether,
    ICMPv6EchoRequest,
    IPOption_Router_Alert,
    IPv6,
    Padding,
    Raw,
    RawPcapWriter,
)

OUR_MAC = "02:00:00:00:00:01"
OUR_IP = "192.0.2.1"
PEER_MAC = "02:00:00:00:00:0a"
PEER_IP = "192.0.2.10"
BCAST = "ff:ff:ff:ff:ff:ff"


def inet_checksum(data: bytes) -> int:
    """RFC 1071 over data as it is; 0 when data holds a correct checksum
    (judge.py checks rvsd's replies with it too)."""
    if len(data) % 2:
        data += b"\0"
    s = sum(int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def wrong(correct: int) -> int:
    """A checksum that is wrong, also under ones' complement's two zeros."""
    bad = (correct + 0x1111) & 0xFFFF
    assert bad not in (correct, 0, 0xFFFF, correct ^ 0xFFFF)
    return bad


def echo(dst_ip=OUR_IP, dst_mac=OUR_MAC, ident=0x1234, seq=1, payload=b"rvs-echo", **ip_fields):
    return Ether(dst=dst_mac, src=PEER_MAC) / IP(src=PEER_IP, dst=dst_ip, ttl=61, **ip_fields) / ICMP(
        type=8, code=0, id=ident, seq=seq
    ) / Raw(payload)


def build():
    rnd = random.Random(20240505)
    frames = []

    def add(name, frame, expect, reason=None):
        raw = bytes(frame) if not isinstance(frame, (bytes, bytearray)) else bytes(frame)
        frames.append({"name": name, "frame": raw, "expect": expect, "reason": reason})

    # --- ARP
    add(
        "arp request for our address (broadcast)",
        Ether(dst=BCAST, src=PEER_MAC)
        / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, hwdst="00:00:00:00:00:00", pdst=OUR_IP),
        "arp_reply",
    )
    add(
        "arp request for an address that is not ours",
        Ether(dst=BCAST, src="02:00:00:00:00:0b")
        / ARP(op=1, hwsrc="02:00:00:00:00:0b", psrc="192.0.2.11", pdst="192.0.2.99"),
        "drop",
        "arp_not_for_us",
    )
    add(
        "arp request for our address, unicast to our MAC (a re-probe)",
        Ether(dst=OUR_MAC, src="02:00:00:00:00:1e")
        / ARP(op=1, hwsrc="02:00:00:00:00:1e", psrc="192.0.2.30", hwdst=OUR_MAC, pdst=OUR_IP),
        "arp_reply",
    )
    add(
        "arp reply to us (learned, not answered)",
        Ether(dst=OUR_MAC, src="02:00:00:00:00:14")
        / ARP(op=2, hwsrc="02:00:00:00:00:14", psrc="192.0.2.20", hwdst=OUR_MAC, pdst=OUR_IP),
        "consumed",
    )
    not_ethernet = bytearray(bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP)))
    not_ethernet[14:16] = (6).to_bytes(2, "big")  # ARP hardware type 6 (IEEE 802), lengths still 6 and 4
    add("arp request with hardware type 6 (not Ethernet)", not_ethernet, "drop", "malformed")

    # --- ICMP echo that must be answered
    add("icmp echo request", echo(ident=0x1234, seq=1, payload=b"rvs echo payload 0123456789"), "echo_reply")
    vlan = Ether(dst=OUR_MAC, src=PEER_MAC) / Dot1Q(vlan=100, prio=5) / IP(src=PEER_IP, dst=OUR_IP, ttl=60) / ICMP(
        type=8, id=0x0101, seq=2
    ) / Raw(b"tagged")
    add("icmp echo request in 802.1Q vlan 100", vlan, "echo_reply")
    add(
        "icmp echo request with an IP option (IHL 6)",
        echo(ident=0x0202, seq=3, payload=b"options", options=[IPOption_Router_Alert()]),
        "echo_reply",
    )
    padded = echo(ident=0x0303, seq=4, payload=b"")
    padded = padded / Padding(b"\xee" * (60 - len(padded)))
    add("icmp echo request padded to 60 bytes", padded, "echo_reply")
    add(
        "icmp echo request with 1400 bytes of payload",
        echo(ident=0x0404, seq=5, payload=bytes(rnd.getrandbits(8) for _ in range(1400))),
        "echo_reply",
    )

    # --- IPv4 that must be dropped
    add("icmp echo request to an address that is not ours", echo(dst_ip="192.0.2.99", seq=6), "drop", "no_service")
    bad_ip = bytearray(bytes(echo(seq=7)))
    correct = int.from_bytes(bad_ip[24:26], "big")
    bad_ip[24:26] = wrong(correct).to_bytes(2, "big")
    add("icmp echo request with a wrong IPv4 header checksum", bad_ip, "drop", "bad_checksum")
    good = echo(seq=8)
    bad_icmp = bytearray(bytes(good))
    correct = int.from_bytes(bad_icmp[36:38], "big")
    bad_icmp[36:38] = wrong(correct).to_bytes(2, "big")
    add("icmp echo request with a wrong ICMP checksum", bad_icmp, "drop", "bad_checksum")
    add(
        "udp to our address",
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / UDP(sport=40000, dport=9) / Raw(b"udp"),
        "drop",
        "unsupported_protocol",
    )
    add(
        "icmp echo reply to our address (not a request)",
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP) / ICMP(type=0, id=9, seq=9) / Raw(b"x"),
        "drop",
        "unsupported_protocol",
    )
    add(
        "first fragment of an icmp echo request to us",
        echo(seq=10, flags="MF", payload=b"A" * 16),
        "drop",
        "fragment",
    )
    add(
        "later fragment of an icmp echo request to us",
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, proto=1, frag=3) / Raw(b"B" * 16),
        "drop",
        "fragment",
    )
    add(
        "ipv4 total length beyond the frame",
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, len=200) / ICMP(type=8, id=1, seq=11),
        "drop",
        "truncated",
    )
    add(
        "ipv4 total length shorter than its own header",
        Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, len=12) / ICMP(type=8, id=1, seq=12),
        "drop",
        "malformed",
    )
    junk_ihl = bytearray(bytes(Ether(dst=OUR_MAC, src=PEER_MAC, type=0x0800)))
    junk_ihl += bytes([0x43]) + bytes(rnd.getrandbits(8) for _ in range(45))
    add("ipv4 with IHL 3 followed by junk", junk_ihl, "drop", "malformed")

    # --- not for us at the Ethernet layer
    add(
        "icmp echo request unicast to another MAC",
        echo(dst_mac="02:00:00:00:00:99", seq=12),
        "drop",
        "other_mac",
    )
    add(
        "ipv6 echo request (all-nodes multicast: rvs is no member of groups)",
        Ether(dst="33:33:00:00:00:01", src=PEER_MAC) / IPv6(src="2001:db8::10", dst="ff02::1") / ICMPv6EchoRequest(),
        "drop",
        "unsupported_protocol",
    )
    junk = bytes(Ether(dst=BCAST, src=PEER_MAC, type=0x88B5)) + bytes(rnd.getrandbits(8) for _ in range(64))
    add("junk with a local experimental ethertype", junk, "drop", "unsupported_ethertype")

    # --- truncated
    add("a 10-byte frame", bytes(rnd.getrandbits(8) for _ in range(10)), "drop", "truncated")
    add("ipv4 header cut short (12 of 20 bytes)", bytes(echo(seq=13))[: 14 + 12], "drop", "truncated")
    add(
        "arp cut short (20 of 28 bytes)",
        bytes(Ether(dst=BCAST, src=PEER_MAC) / ARP(op=1, hwsrc=PEER_MAC, psrc=PEER_IP, pdst=OUR_IP))[: 14 + 20],
        "drop",
        "truncated",
    )
    add(
        "icmp header cut short (4 of 8 bytes)",
        bytes(Ether(dst=OUR_MAC, src=PEER_MAC) / IP(src=PEER_IP, dst=OUR_IP, proto=1) / Raw(b"\x08\x00\xf7\xff")),
        "drop",
        "truncated",
    )

    # --- and one more plain echo at the end: the worker is still answering
    add("icmp echo request after all the junk", echo(ident=0x0505, seq=14, payload=b"still here"), "echo_reply")
    return frames


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out_pcap, manifest_path = sys.argv[1], sys.argv[2]
    frames = build()
    # The frames' bytes as they are (no padding), as Ethernet (linktype 1).
    writer = RawPcapWriter(out_pcap, linktype=1, sync=True)
    for f in frames:
        writer.write(f["frame"])
    writer.close()
    manifest = {
        "our_mac": OUR_MAC,
        "our_ip": OUR_IP,
        "frames": [
            {"index": i, "name": f["name"], "expect": f["expect"], "reason": f["reason"], "len": len(f["frame"])}
            for i, f in enumerate(frames)
        ],
    }
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1)
    counts = {}
    for f in frames:
        key = f["reason"] or f["expect"]
        counts[key] = counts.get(key, 0) + 1
    print(f"wrote {len(frames)} frames to {out_pcap}: {json.dumps(counts, sort_keys=True)}")


if __name__ == "__main__":
    main()
