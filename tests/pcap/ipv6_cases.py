#!/usr/bin/env python3
"""IPv6 at rvsd's edge, as a pcap table judged with scapy (never rvs's
parser): neighbour discovery, ICMPv6 echo, malformed IPv6, an
extension-header flood, and IPv6 to addresses that are not rvsd's.

  make  OUT.pcap MANIFEST.json       writes the input frames and what each must become
  judge IN.pcap MANIFEST.json OUT.pcap  checks rvsd's output against the manifest

rvsd runs with one port, MAC OUR_MAC, addresses 192.0.2.1/24 and
OUR_IP6/64. Its output must hold exactly one unsolicited neighbour
advertisement for OUR_IP6 (the start's announcement, anywhere) and the
replies the manifest asks for, in the order of their requests:

  na:   Ethernet to the asker's source link-layer option (else the frame's
        source; all-nodes 33:33:00:00:00:01 for a DAD probe) from OUR_MAC,
        802.1Q tags kept; IPv6 from the target to the asker (ff02::1 for
        DAD), hop limit 255; ICMPv6 136 code 0, R clear, S set (clear for
        DAD), O set, the asked target, one target link-layer option
        OUR_MAC; checksum right (scapy's in6_chksum and the test's own
        RFC 1071 arithmetic).
  echo: Ethernet back to the asker; IPv6 with the addresses swapped, hop
        limit 64, no extension headers; ICMPv6 129 code 0 with the same id,
        sequence and data; checksum right.

The judge prints one JSON verdict on stdout ({"ok", "problems", ...}).
"""

import json
import random
import sys

from scapy.all import (  # noqa: E402
    Dot1Q,
    Ether,
    ICMPv6EchoReply,
    ICMPv6EchoRequest,
    ICMPv6MLReport2,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
    PadN,
    Raw,
    RawPcapWriter,
    RouterAlert,
    TCP,
    UDP,
    rdpcap,
)
from scapy.layers.inet6 import in6_chksum  # noqa: E402

# The test's own RFC 1071 arithmetic and the L2 walk of the ARP/ICMP table.
from judge import l3_offset  # noqa: E402
from make_input import inet_checksum, wrong  # noqa: E402

OUR_MAC = "02:00:00:00:00:01"
OUR_IP6 = "2001:db8:1::1"
PEER_MAC = "02:00:00:00:00:0a"
PEER_LL = "02:00:00:00:00:0b"  # the asker's link-layer option (not its frame source)
PEER_IP6 = "2001:db8:1::10"
PEER_LINK_LOCAL = "fe80::a"
ALL_NODES = "ff02::1"
ALL_NODES_MAC = "33:33:00:00:00:01"
FLOOD = 200


def solicited_node(addr: str) -> str:
    import ipaddress

    low = int(ipaddress.IPv6Address(addr)) & 0xFFFFFF
    return str(ipaddress.IPv6Address(int(ipaddress.IPv6Address("ff02::1:ff00:0")) | low))


def group_mac(addr: str) -> str:
    import ipaddress

    b = ipaddress.IPv6Address(addr).packed[-4:]
    return "33:33:" + ":".join(f"{x:02x}" for x in b)


def ns(target=OUR_IP6, src=PEER_IP6, dst=None, sll=PEER_LL, hlim=255, vlan=None):
    dst = dst or solicited_node(target)
    eth_dst = group_mac(dst) if dst.startswith("ff") else OUR_MAC
    p = Ether(dst=eth_dst, src=PEER_MAC)
    if vlan is not None:
        p = p / Dot1Q(vlan=vlan)
    p = p / IPv6(src=src, dst=dst, hlim=hlim) / ICMPv6ND_NS(tgt=target)
    if sll:
        p = p / ICMPv6NDOptSrcLLAddr(lladdr=sll)
    return p


def echo6(dst=OUR_IP6, src=PEER_IP6, ext=None, seq=1, data=b"rvs-echo6"):
    ip = IPv6(src=src, dst=dst, hlim=61)
    if ext is not None:
        ip = ip / ext
    eth_dst = group_mac(dst) if dst.startswith("ff") else OUR_MAC
    return Ether(dst=eth_dst, src=PEER_MAC) / ip / ICMPv6EchoRequest(id=0x6666, seq=seq, data=data)


def to_us(ip_and_up):
    return Ether(dst=OUR_MAC, src=PEER_MAC) / ip_and_up


def with_bad_icmpv6_checksum(p):
    raw = bytearray(bytes(p))
    off, _, _ = l3_offset(bytes(raw))
    icmp_at = off + 40
    good = int.from_bytes(raw[icmp_at + 2 : icmp_at + 4], "big")
    raw[icmp_at + 2 : icmp_at + 4] = wrong(good).to_bytes(2, "big")
    return bytes(raw)


def build():
    rnd = random.Random(20261203)
    frames = []

    def add(name, frame, expect, reason=None):
        frames.append({"name": name, "raw": bytes(frame), "expect": expect, "reason": reason})

    # --- neighbour discovery
    add("NS for our address to its solicited-node group", ns(), "na")
    add("NS for our address, unicast (reachability check)", ns(dst=OUR_IP6), "na")
    add("NS unicast without a source link-layer option", ns(dst=OUR_IP6, sll=None), "na")
    add("NS from a link-local address", ns(src=PEER_LINK_LOCAL), "na")
    add("DAD probe (from ::, no option)", ns(src="::", sll=None), "na")
    add("NS behind an 802.1Q tag", ns(vlan=100), "na")
    add("NS for a foreign target", ns(target="2001:db8:1::77"), "drop", "nd_not_for_us")
    add("NS with hop limit 64 (off-link)", ns(hlim=64), "drop", "nd_invalid")
    add("DAD probe with a link-layer option (RFC 4861 7.1.1)", ns(src="::"), "drop", "nd_invalid")
    add("NS with a wrong checksum", with_bad_icmpv6_checksum(ns()), "drop", "bad_checksum")
    add(
        "unsolicited NA for an address rvsd never asked about nor knows",
        Ether(dst=ALL_NODES_MAC, src=PEER_MAC)
        / IPv6(src="2001:db8:1::55", dst=ALL_NODES, hlim=255)
        / ICMPv6ND_NA(tgt="2001:db8:1::55", R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC),
        "drop",
        "nd_not_for_us",
    )
    add(
        "solicited NA to all nodes (RFC 4861 7.1.2)",
        Ether(dst=ALL_NODES_MAC, src=PEER_MAC)
        / IPv6(src=PEER_IP6, dst=ALL_NODES, hlim=255)
        / ICMPv6ND_NA(tgt=PEER_IP6, R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=PEER_MAC),
        "drop",
        "nd_invalid",
    )

    # --- ICMPv6 echo
    add("echo request to our address", echo6(), "echo")
    add("echo request behind a destination options header", echo6(ext=IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")]), seq=2), "echo")
    add("echo request of 1000 bytes", echo6(seq=3, data=bytes(rnd.getrandbits(8) for _ in range(1000))), "echo")
    add("echo request with a wrong checksum", with_bad_icmpv6_checksum(echo6(seq=4)), "drop", "bad_checksum")
    add("echo request to all nodes", echo6(dst=ALL_NODES, seq=5), "drop", "unsupported_protocol")
    add(
        "MLDv2 report (hop-by-hop router alert)",
        Ether(dst="33:33:00:00:00:16", src=PEER_MAC)
        / IPv6(src=PEER_LINK_LOCAL, dst="ff02::16", hlim=1)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / ICMPv6MLReport2(),
        "drop",
        "unsupported_protocol",
    )
    add("UDP to our address", to_us(IPv6(src=PEER_IP6, dst=OUR_IP6) / UDP(sport=5353, dport=53) / Raw(b"q")), "drop", "unsupported_protocol")

    # --- not the balancer's own: the forwarding seam
    add("UDP to another address on the link", to_us(IPv6(src=PEER_IP6, dst="2001:db8:1::99") / UDP(sport=5353, dport=53) / Raw(b"q")), "drop", "ipv6_no_service")
    add("TCP SYN to a remote address", to_us(IPv6(src=PEER_IP6, dst="2001:db8:99::1") / TCP(sport=40000, dport=80, flags="S")), "drop", "ipv6_no_service")
    add("echo request to another address", echo6(dst="2001:db8:1::99", seq=6), "drop", "ipv6_no_service")

    # --- malformed
    longer = bytearray(bytes(echo6(seq=7)))
    longer[14 + 4 : 14 + 6] = (1000).to_bytes(2, "big")
    add("payload length beyond the frame", bytes(longer), "drop", "truncated")
    add("IPv6 header cut at 30 bytes", bytes(echo6(seq=8))[: 14 + 30], "drop", "truncated")
    v4 = bytearray(bytes(echo6(seq=9)))
    v4[14] = 0x40 | (v4[14] & 0x0F)
    add("version 4 under the IPv6 ethertype", bytes(v4), "drop", "malformed")
    add(
        "hop-by-hop header in the second place",
        to_us(IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrDestOpt() / IPv6ExtHdrHopByHop() / UDP()),
        "drop",
        "ipv6_hop_by_hop_not_first",
    )
    add(
        "routing header with a segment left",
        to_us(IPv6(src=PEER_IP6, dst=OUR_IP6) / IPv6ExtHdrRouting(addresses=["2001:db8:99::1"], segleft=1) / UDP()),
        "drop",
        "ipv6_source_route",
    )
    chain = IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(236))])
    add(
        "extension headers longer than 512 bytes",
        to_us(IPv6(src=PEER_IP6, dst=OUR_IP6) / chain / chain.copy() / chain.copy() / UDP()),
        "drop",
        "ipv6_ext_too_long",
    )
    # The flood: chains of 9 to 40 small headers, random option bytes.
    for i in range(FLOOD):
        n = rnd.randint(9, 40)
        p = IPv6(src=PEER_IP6, dst=OUR_IP6 if i % 2 else "2001:db8:1::99")
        for _ in range(n):
            p = p / IPv6ExtHdrDestOpt(options=[PadN(optdata=bytes(rnd.getrandbits(8) for _ in range(4)))])
        add(f"extension-header flood #{i} ({n} headers)", to_us(p / UDP(sport=i + 1, dport=53)), "drop", "ipv6_ext_too_many")
    return frames


def make(out_pcap, manifest_path):
    frames = build()
    w = RawPcapWriter(out_pcap, linktype=1)
    for f in frames:
        w.write(f["raw"])
    w.close()
    manifest = {
        "our_mac": OUR_MAC,
        "our_ip6": OUR_IP6,
        "frames": [
            {"index": i, "name": f["name"], "len": len(f["raw"]), "expect": f["expect"], "reason": f["reason"]}
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


# ------------------------------------------------------------------ judge


def icmpv6_checks(out: bytes, problems: list):
    """The ICMPv6 checksum by scapy and by the test's own arithmetic."""
    off, _, _ = l3_offset(out)
    ip = IPv6(out[off:])
    msg = out[off + 40 : off + 40 + ip.plen]
    zeroed = msg[:2] + b"\0\0" + msg[4:]
    by_scapy = in6_chksum(58, ip, zeroed)
    got = int.from_bytes(msg[2:4], "big")
    if got != by_scapy:
        problems.append(f"ICMPv6 checksum {got:#06x}, scapy computes {by_scapy:#06x}")
    import ipaddress

    pseudo = (
        ipaddress.IPv6Address(ip.src).packed
        + ipaddress.IPv6Address(ip.dst).packed
        + len(msg).to_bytes(4, "big")
        + b"\0\0\0\x3a"
    )
    if inet_checksum(pseudo + msg) != 0:
        problems.append("ICMPv6 checksum does not verify under RFC 1071 over the pseudo-header")


def check_na(req: bytes, out: bytes, our_mac: str, problems: list):
    q_off, _, q_tags = l3_offset(req)
    o_off, o_type, o_tags = l3_offset(out)
    q = IPv6(req[q_off:])
    ns_msg = q[ICMPv6ND_NS]
    dad = q.src == "::"
    sll = q[ICMPv6NDOptSrcLLAddr].lladdr.lower() if ICMPv6NDOptSrcLLAddr in q else None
    want_eth_dst = ALL_NODES_MAC if dad else (sll or Ether(req).src.lower())
    r_eth = Ether(out)
    if o_type != 0x86DD:
        problems.append(f"not IPv6: ethertype {o_type:#06x}")
        return
    r = IPv6(out[o_off:])
    if ICMPv6ND_NA not in r:
        problems.append(f"not a neighbour advertisement: {r.summary()}")
        return
    na = r[ICMPv6ND_NA]
    opts = []
    layer = na.payload
    while layer and not isinstance(layer, Raw) and layer.name != "NoPayload":
        opts.append(layer)
        layer = layer.payload
    expect = [
        ("Ethernet destination", r_eth.dst.lower(), want_eth_dst),
        ("Ethernet source", r_eth.src.lower(), our_mac),
        ("802.1Q tags", o_tags, q_tags),
        ("IPv6 source", r.src, ns_msg.tgt),
        ("IPv6 destination", r.dst, ALL_NODES if dad else q.src),
        ("hop limit", r.hlim, 255),
        ("next header", r.nh, 58),
        ("payload length", r.plen, 32),
        ("ICMPv6 code", na.code, 0),
        ("R flag", na.R, 0),
        ("S flag", na.S, 0 if dad else 1),
        ("O flag", na.O, 1),
        ("target", na.tgt, ns_msg.tgt),
        ("options", [o.name for o in opts], ["ICMPv6 Neighbor Discovery Option - Destination Link-Layer Address"]),
    ]
    if opts and ICMPv6NDOptDstLLAddr in na:
        expect.append(("target link-layer address", na[ICMPv6NDOptDstLLAddr].lladdr.lower(), our_mac))
    for what, got, want in expect:
        if got != want:
            problems.append(f"{what}: got {got!r}, want {want!r}")
    icmpv6_checks(out, problems)


def check_echo(req: bytes, out: bytes, our_mac: str, problems: list):
    q_off, _, q_tags = l3_offset(req)
    o_off, o_type, o_tags = l3_offset(out)
    q = IPv6(req[q_off:])
    qe = q[ICMPv6EchoRequest]
    r_eth = Ether(out)
    if o_type != 0x86DD:
        problems.append(f"not IPv6: ethertype {o_type:#06x}")
        return
    r = IPv6(out[o_off:])
    if ICMPv6EchoReply not in r:
        problems.append(f"not an echo reply: {r.summary()}")
        return
    re = r[ICMPv6EchoReply]
    expect = [
        ("Ethernet destination", r_eth.dst.lower(), Ether(req).src.lower()),
        ("Ethernet source", r_eth.src.lower(), our_mac),
        ("802.1Q tags", o_tags, q_tags),
        ("IPv6 source", r.src, q.dst),
        ("IPv6 destination", r.dst, q.src),
        ("hop limit", r.hlim, 64),
        ("next header (no extension headers)", r.nh, 58),
        ("code", re.code, 0),
        ("id", re.id, qe.id),
        ("sequence", re.seq, qe.seq),
        ("data", bytes(re.data), bytes(qe.data)),
        ("frame length", len(out), o_off + 40 + 8 + len(bytes(qe.data))),
    ]
    for what, got, want in expect:
        if got != want:
            problems.append(f"{what}: got {got!r}, want {want!r}")
    icmpv6_checks(out, problems)


CHECKS = {"na": check_na, "echo": check_echo}


def is_announcement(out: bytes, our_mac: str) -> bool:
    """The start's unsolicited advertisement of our address."""
    try:
        off, t, tags = l3_offset(out)
        r = IPv6(out[off:])
        na = r[ICMPv6ND_NA]
        return (
            t == 0x86DD
            and not tags
            and Ether(out).dst.lower() == ALL_NODES_MAC
            and r.dst == ALL_NODES
            and r.hlim == 255
            and na.S == 0
            and na.O == 1
            and na.tgt == OUR_IP6
            and na[ICMPv6NDOptDstLLAddr].lladdr.lower() == our_mac
        )
    except Exception:
        return False


def judge(in_path, manifest_path, out_path):
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    our_mac = manifest["our_mac"].lower()
    requests = [bytes(p) for p in rdpcap(in_path)]
    outputs = [bytes(p) for p in rdpcap(out_path)]
    frames = manifest["frames"]
    problems = []
    if len(requests) != len(frames):
        problems.append(f"input pcap has {len(requests)} frames, the manifest {len(frames)}")
    # The replies in order, and one announcement anywhere among them: an
    # output that is not the next reply but is the announcement is it (a
    # DAD answer is the same frame, so which of the two is taken for the
    # announcement changes nothing).
    expected = [f for f in frames if f["expect"] in CHECKS]
    checked = []
    announced = False
    n = 0
    for o in outputs:
        if n < len(expected):
            f = expected[n]
            entry = {"reply": n, "to_frame": f["index"], "name": f["name"], "kind": f["expect"], "problems": []}
            try:
                CHECKS[f["expect"]](requests[f["index"]], o, our_mac, entry["problems"])
            except Exception as e:  # a reply scapy cannot even decode
                entry["problems"].append(f"cannot decode: {type(e).__name__}: {e}")
            if entry["problems"] and not announced and is_announcement(o, our_mac):
                announced = True
                icmpv6_checks(o, problems)
                continue
            entry["frame_hex"] = o.hex()
            checked.append(entry)
            problems += [f"reply {n} (to input frame {f['index']}, {f['name']}): {p}" for p in entry["problems"]]
            n += 1
        elif not announced and is_announcement(o, our_mac):
            announced = True
            icmpv6_checks(o, problems)
        else:
            problems.append(f"unexpected extra output frame: {Ether(o).summary()} ({o.hex()})")
    for f in expected[n:]:
        problems.append(f"missing reply to input frame {f['index']} ({f['name']})")
    if not announced:
        problems.append("no unsolicited neighbour advertisement of our address at start")
    verdict = {
        "ok": not problems,
        "input_frames": len(requests),
        "expected_replies": len(expected),
        "output_frames": len(outputs),
        "output_bytes": sum(len(o) for o in outputs),
        "problems": problems,
        "replies": checked,
    }
    print(json.dumps(verdict))
    err = sys.stderr
    for e in checked:
        mark = "ok  " if not e["problems"] else "FAIL"
        print(f"ipv6 judge: {mark} {e['kind']} to frame {e['to_frame']} ({e['name']})", file=err)
        for p in e["problems"]:
            print(f"ipv6 judge:        {p}", file=err)
    print(f"ipv6 judge: {'PASS' if not problems else 'FAIL: %d problem(s)' % len(problems)}", file=err)
    sys.exit(0 if not problems else 1)


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "make":
        make(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 5 and sys.argv[1] == "judge":
        judge(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
