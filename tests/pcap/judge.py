#!/usr/bin/env python3
"""Judges rvsd's output pcap in the net_pcap test, independently of rvs's own
parser: decodes with scapy and checks checksums with the test's own
arithmetic (make_input.py's inet_checksum).

The output must hold exactly the replies the manifest (make_input.py) asks
for, in the order of their requests, and nothing else:

  ARP reply:  Ethernet to the asker from our MAC; ARP is-at our MAC for the
              asked (our) address, to the asker's MAC and address.
  echo reply: Ethernet to the asker from our MAC, 802.1Q tag kept; IPv4 with
              the addresses swapped, TTL 64, the same header length, options
              and total length, a correct header checksum; ICMP type 0 code 0,
              the same id, sequence and data, a correct checksum.

Prints one JSON verdict on stdout ({"ok": ..., "problems": [...], ...}) and a
human account on stderr; exits 0 when every check holds, 1 otherwise.

usage: judge.py INPUT.pcap MANIFEST.json OUTPUT.pcap
"""

import json
import sys

from scapy.all import ARP, ICMP, IP, Dot1Q, Ether, rdpcap  # noqa: E402

# The test's own RFC 1071 arithmetic (not rvs's), shared with the input's maker.
from make_input import inet_checksum  # noqa: E402


def l3_offset(raw: bytes):
    """Offset of the L3 header and the VLAN tags (as raw 4-byte TCIs) before it."""
    off, tags = 12, []
    while int.from_bytes(raw[off : off + 2], "big") in (0x8100, 0x88A8):
        tags.append(raw[off : off + 4])
        off += 4
    return off + 2, int.from_bytes(raw[off : off + 2], "big"), tags


def check_arp_reply(req: bytes, out: bytes, our_mac: str, problems: list):
    q, r = Ether(req), Ether(out)
    if ARP not in r:
        problems.append(f"not an ARP packet: {r.summary()}")
        return
    qa, ra = q[ARP], r[ARP]
    expect = [
        ("Ethernet destination", r.dst.lower(), q.src.lower()),
        ("Ethernet source", r.src.lower(), our_mac),
        ("ARP hardware type", ra.hwtype, 1),
        ("ARP protocol type", ra.ptype, 0x0800),
        ("ARP hardware length", ra.hwlen, 6),
        ("ARP protocol length", ra.plen, 4),
        ("ARP operation", ra.op, 2),
        ("ARP sender MAC", ra.hwsrc.lower(), our_mac),
        ("ARP sender address", ra.psrc, qa.pdst),
        ("ARP target MAC", ra.hwdst.lower(), qa.hwsrc.lower()),
        ("ARP target address", ra.pdst, qa.psrc),
    ]
    for what, got, want in expect:
        if got != want:
            problems.append(f"{what}: got {got!r}, expected {want!r}")
    if len(out) < 42:
        problems.append(f"frame of {len(out)} bytes is shorter than Ethernet + ARP (42)")


def check_echo_reply(req: bytes, out: bytes, our_mac: str, problems: list):
    q, r = Ether(req), Ether(out)
    if r.dst.lower() != q.src.lower():
        problems.append(f"Ethernet destination: got {r.dst}, expected the asker {q.src}")
    if r.src.lower() != our_mac:
        problems.append(f"Ethernet source: got {r.src}, expected our {our_mac}")
    q_off, q_type, q_tags = l3_offset(req)
    r_off, r_type, r_tags = l3_offset(out)
    if r_tags != q_tags:
        problems.append(f"VLAN tags: got {[t.hex() for t in r_tags]}, expected {[t.hex() for t in q_tags]} (kept as they were)")
    if Dot1Q in q and (Dot1Q not in r or r[Dot1Q].vlan != q[Dot1Q].vlan or r[Dot1Q].prio != q[Dot1Q].prio):
        problems.append("802.1Q tag not kept (scapy's view)")
    if r_type != 0x0800:
        problems.append(f"ethertype: got 0x{r_type:04x}, expected 0x0800")
        return
    if IP not in r or ICMP not in r:
        problems.append(f"not IPv4/ICMP: {r.summary()}")
        return
    qi, ri = q[IP], r[IP]
    ihl = ri.ihl * 4
    ip_raw = out[r_off : r_off + ihl]
    for what, got, want in [
        ("IP version", ri.version, 4),
        ("IP header length (IHL)", ri.ihl, qi.ihl),
        ("IP total length", ri.len, qi.len),
        ("IP source", ri.src, qi.dst),
        ("IP destination", ri.dst, qi.src),
        ("IP TTL", ri.ttl, 64),
        ("IP protocol", ri.proto, 1),
        ("IP options (raw)", bytes(out[r_off + 20 : r_off + ihl]).hex(), bytes(req[q_off + 20 : q_off + qi.ihl * 4]).hex()),
    ]:
        if got != want:
            problems.append(f"{what}: got {got!r}, expected {want!r}")
    if r_off + ri.len > len(out):
        problems.append(f"IP total length {ri.len} runs past the frame ({len(out)} bytes)")
        return
    if inet_checksum(ip_raw) != 0:
        stored = int.from_bytes(ip_raw[10:12], "big")
        fixed = bytearray(ip_raw)
        fixed[10:12] = b"\0\0"
        problems.append(f"IPv4 header checksum wrong: 0x{stored:04x}, correct is 0x{inet_checksum(bytes(fixed)):04x}")
    icmp_raw = out[r_off + ihl : r_off + ri.len]
    q_icmp_raw = req[q_off + qi.ihl * 4 : q_off + qi.len]
    if inet_checksum(icmp_raw) != 0:
        stored = int.from_bytes(icmp_raw[2:4], "big")
        fixed = bytearray(icmp_raw)
        fixed[2:4] = b"\0\0"
        problems.append(f"ICMP checksum wrong: 0x{stored:04x}, correct is 0x{inet_checksum(bytes(fixed)):04x}")
    ri_icmp = r[ICMP]
    qi_icmp = q[ICMP]
    for what, got, want in [
        ("ICMP type", ri_icmp.type, 0),
        ("ICMP code", ri_icmp.code, 0),
        ("ICMP id", ri_icmp.id, qi_icmp.id),
        ("ICMP sequence", ri_icmp.seq, qi_icmp.seq),
    ]:
        if got != want:
            problems.append(f"{what}: got {got!r}, expected {want!r}")
    if icmp_raw[8:] != q_icmp_raw[8:]:
        problems.append(f"ICMP data differs from the request's ({len(icmp_raw) - 8} vs {len(q_icmp_raw) - 8} bytes)")


CHECKS = {"arp_reply": check_arp_reply, "echo_reply": check_echo_reply}


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    in_path, manifest_path, out_path = sys.argv[1:]
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    our_mac = manifest["our_mac"].lower()
    requests = [bytes(p) for p in rdpcap(in_path)]
    outputs = [bytes(p) for p in rdpcap(out_path)]
    frames = manifest["frames"]
    problems = []
    if len(requests) != len(frames):
        problems.append(f"input pcap has {len(requests)} frames, the manifest {len(frames)}")
    expected = [f for f in frames if f["expect"] in CHECKS]
    checked = []
    for n, f in enumerate(expected):
        entry = {"reply": n, "to_frame": f["index"], "name": f["name"], "kind": f["expect"], "problems": []}
        if n >= len(outputs):
            entry["problems"].append("missing: the output has no frame here")
        else:
            try:
                CHECKS[f["expect"]](requests[f["index"]], outputs[n], our_mac, entry["problems"])
            except Exception as e:  # a reply scapy cannot even decode
                entry["problems"].append(f"cannot decode: {type(e).__name__}: {e}")
            entry["frame_hex"] = outputs[n].hex()
        checked.append(entry)
        problems += [f"reply {n} (to input frame {f['index']}, {f['name']}): {p}" for p in entry["problems"]]
    for n in range(len(expected), len(outputs)):
        problems.append(f"unexpected extra output frame {n}: {Ether(outputs[n]).summary()} ({outputs[n].hex()})")

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
    print(f"judge: {len(requests)} frames in, {len(outputs)} out, {len(expected)} replies expected", file=err)
    for e in checked:
        mark = "ok  " if not e["problems"] else "FAIL"
        print(f"judge: {mark} reply {e['reply']}: {e['kind']} to frame {e['to_frame']} ({e['name']})", file=err)
        for p in e["problems"]:
            print(f"judge:        {p}", file=err)
    for p in problems:
        if p.startswith("unexpected") or p.startswith("input pcap"):
            print(f"judge: FAIL {p}", file=err)
    print(f"judge: {'PASS' if not problems else 'FAIL: %d problem(s)' % len(problems)}", file=err)
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
