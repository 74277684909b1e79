#!/usr/bin/env python3
"""The load-balancing packet test's input and judge (tests/pcap_lb.rs),
driven by the table in lb_cases.py. Decodes with scapy and checks
checksums with scapy's routines, never with rvs's parser.

  lb_judge.py make IN.pcap MANIFEST.json CONFIG.toml
      writes the input frames, a manifest (the interface to configure and
      the frames by case) and the config fragment (routes, static
      neighbours, virtual servers) to append to the test's base config.

  lb_judge.py judge IN.pcap OUT.pcap
      judges rvsd's output: every frame attributed to its case (by the
      client address it concerns), each case's frames equal to one of the
      case's acceptable outcomes (exact bytes, rvsd-chosen fields aside),
      every IPv4/TCP/UDP/ICMP checksum valid, the cases' frames in case
      order, nothing else. Prints one JSON verdict on stdout:
        {"ok", "problems": [...], "cases": [...],
         "expect_stats": [{"pointer", "want", "why"}], ...}
      where expect_stats are the counters of rvsd's `stats:` line the
      table implies (JSON pointers into it), for the Rust test to compare;
      and a human account on stderr. Exits 0 when the output is right.

The table is lb_cases.py unless the environment names another module of
this directory in LB_CASES (tests/pcap_fullnat.rs: fullnat_cases), with
the same names; a table whose frames carry no client address may give its
own `frame_key(raw)`.
"""

import importlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from scapy.all import ARP, ICMP, IP, TCP, UDP, Ether, IPerror, Raw, RawPcapWriter, TCPerror, UDPerror, rdpcap  # noqa: E402
from scapy.layers.inet import in4_chksum  # noqa: E402
from scapy.utils import checksum  # noqa: E402

lb_cases = importlib.import_module(os.environ.get("LB_CASES", "lb_cases"))

DROP_REASONS = [
    "truncated", "malformed", "bad_checksum", "other_mac", "unsupported_ethertype", "arp_not_for_us",
    "no_service", "unsupported_protocol", "fragment", "tx_full", "ttl_expired", "no_route",
    "neighbor_unresolved", "no_connection", "table_full", "no_real_server", "too_big",
    "fragment_queue_full", "fragment_unmatched", "ipv6_no_service",
    "local_ports_exhausted",
]  # fmt: skip


# ------------------------------------------------------------------ make


def make(in_path, manifest_path, config_path):
    cases = lb_cases.build_cases()
    writer = RawPcapWriter(in_path, linktype=1, sync=True)
    frames = []
    for ci, c in enumerate(cases):
        for what, f in c.frames:
            raw = bytes(f)
            writer.write(raw)
            frames.append({"index": len(frames), "case": ci, "name": what, "len": len(raw)})
    writer.close()
    manifest = {
        "mac": lb_cases.OUR_MAC,
        "addresses": lb_cases.ADDRESSES,
        "cases": [{"index": i, "name": c.name, "frames": len(c.frames)} for i, c in enumerate(cases)],
        "frames": frames,
    }
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=1)
    with open(config_path, "w") as fh:
        fh.write(lb_cases.config_fragment())
    print(f"wrote {len(frames)} frames in {len(cases)} cases to {in_path}")


# ------------------------------------------------------------- checksums


def walk(p):
    """The layers of a scapy packet, outermost first."""
    layer = p
    while layer is not None and not isinstance(layer, type(None)):
        yield layer
        if not layer.payload or isinstance(layer.payload, (Raw,)):
            if isinstance(layer.payload, Raw):
                yield layer.payload
            return
        layer = layer.payload


def checksum_problems(raw):
    """Every IPv4 header, TCP, UDP and ICMP checksum in the frame, recomputed
    by scapy (the field deleted and the packet rebuilt) and compared with
    the one rvsd wrote; quoted headers of ICMP errors with scapy's routines."""
    problems = []
    try:
        p = Ether(raw)
    except Exception as e:  # noqa: BLE001
        return [f"scapy cannot decode the frame: {type(e).__name__}: {e}"]
    if bytes(p) != raw:
        problems.append("scapy does not rebuild the frame byte for byte (checksums checked on its rebuild)")
    kinds = (IP, TCP, UDP, ICMP)
    layers = [lyr for lyr in walk(p) if type(lyr) in kinds]
    for n, lyr in enumerate(layers):
        stored = lyr.chksum
        if type(lyr) is UDP and stored == 0:
            continue  # no checksum: allowed where the table expects it (compared exactly)
        under = lyr.underlayer
        if type(lyr) in (TCP, UDP) and isinstance(under, IP) and (under.flags.MF or under.frag):
            continue  # a first fragment: the sum covers the whole datagram (compared exactly)
        if type(lyr) in (TCP, UDP) and type(under).__name__ == "IPv6ExtHdrFragment":
            continue  # a first fragment: the sum covers the whole datagram (compared exactly)
        q = Ether(raw)
        ql = [x for x in walk(q) if type(x) in kinds][n]
        ql.chksum = None
        rebuilt = Ether(bytes(q))
        fresh = [x for x in walk(rebuilt) if type(x) in kinds][n].chksum
        if fresh != stored:
            problems.append(f"{type(lyr).__name__} checksum (layer {n}) is 0x{stored:04x}, scapy computes 0x{fresh:04x}")
    # Quoted packets of ICMP errors: the header checksum, and the
    # transport checksum when the quote holds the whole segment.
    for lyr in walk(p):
        if type(lyr) is IPerror:
            hdr = bytes(lyr)[: lyr.ihl * 4]
            if checksum(hdr) != 0:
                problems.append(f"quoted IPv4 header checksum 0x{lyr.chksum:04x} is wrong")
            seg = bytes(lyr.payload)
            if lyr.len == lyr.ihl * 4 + len(seg) and type(lyr.payload) in (TCPerror, UDPerror):
                if not (type(lyr.payload) is UDPerror and lyr.payload.chksum == 0):
                    if in4_chksum(lyr.proto, lyr, seg) != 0:
                        problems.append(f"quoted {type(lyr.payload).__name__[:3]} checksum 0x{lyr.payload.chksum:04x} is wrong")
    return problems


# -------------------------------------------------------------- matching


def frame_key(raw):
    """The case a frame belongs to: "arp", or the client address (198.51.100.x)
    in its outer, inner or quoted IPv4 header; None when it has neither."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    if ARP in p:
        return "arp"
    for lyr in walk(p):
        if isinstance(lyr, IP):
            for a in (lyr.src, lyr.dst):
                if a.startswith("198.51.100."):
                    return a
    return None


def layer_name(lyr, seen):
    name = type(lyr).__name__
    seen[name] = seen.get(name, 0) + 1
    return name if seen[name] == 1 else f"{name}#{seen[name]}"


def describe_diff(expected, got, limit=10):
    """Field by field (scapy's view) where `got` differs from `expected`."""
    diffs = []
    if len(got) != len(expected):
        diffs.append(f"frame length {len(got)}, expected {len(expected)}")
    try:
        a, b = list(walk(Ether(got))), list(walk(Ether(expected)))
    except Exception as e:  # noqa: BLE001
        return diffs + [f"cannot decode: {e}"]
    seen = {}
    for la, lb in zip(a, b):
        name = layer_name(lb, seen)
        if type(la) is not type(lb):
            diffs.append(f"{name}: got a {type(la).__name__} layer")
            break
        if type(lb) is Raw:
            ra, rb = la.load, lb.load
            if ra != rb:
                k = next((i for i in range(min(len(ra), len(rb))) if ra[i] != rb[i]), min(len(ra), len(rb)))
                diffs.append(f"{name}: data differs from byte {k} ({len(ra)} bytes, expected {len(rb)})")
            continue
        for f in lb.fields_desc:
            va, vb = la.getfieldval(f.name), lb.getfieldval(f.name)
            if va != vb:
                fa, fb = (f"0x{va:04x}", f"0x{vb:04x}") if f.name == "chksum" and isinstance(va, int) and isinstance(vb, int) else (repr(va), repr(vb))
                diffs.append(f"{name}.{f.name}: got {fa}, expected {fb}")
    if len(a) != len(b):
        diffs.append(f"{len(a)} layers, expected {len(b)} ({' / '.join(type(x).__name__ for x in a)})")
    if not diffs:
        k = next((i for i in range(min(len(got), len(expected))) if got[i] != expected[i]), None)
        diffs.append(f"bytes differ at offset {k}")
    return diffs[:limit]


def expected_bytes(out, got):
    """The expected frame's bytes, with the fields rvsd chooses taken from `got`."""
    exp = out.frame.copy()
    if out.free:
        try:
            g = Ether(got)
        except Exception:  # noqa: BLE001
            g = None
        for f in out.free:
            cls_name, fname = f.split(".")
            cls = {"IP": IP, "ICMP": ICMP, "TCP": TCP, "UDP": UDP}[cls_name]
            if g is not None and cls in g:
                setattr(exp[cls], fname, getattr(g[cls], fname))
                exp[cls].chksum = None
    return bytes(exp)


def mismatch(out, got):
    """Problems when frame `got` is not what `out` expects; [] when it is."""
    exp = expected_bytes(out, got)
    return [] if exp == got else describe_diff(exp, got)


def summary(raw):
    try:
        return Ether(raw).summary()
    except Exception:  # noqa: BLE001
        return raw.hex()


def judge_alt(alt, order, got):
    """(frames matched, problems) of the case's output `got` against `alt`."""
    problems, matched = [], 0
    exp = alt.outputs
    if order == "ordered":
        # Align in order: each expected frame takes the next output equal
        # to it; an expected frame with none is wrong or missing, shown
        # against the output frame standing in its place.
        place = [None] * len(exp)
        j = 0
        for i, o in enumerate(exp):
            k = next((k for k in range(j, len(got)) if not mismatch(o, got[k])), None)
            if k is not None:
                place[i] = k
                j = k + 1
                matched += 1
        used = {k for k in place if k is not None}
        prev = -1
        for i, o in enumerate(exp):
            if place[i] is not None:
                prev = place[i]
                continue
            nxt = next((place[n] for n in range(i + 1, len(exp)) if place[n] is not None), len(got))
            stand_in = next((k for k in range(prev + 1, nxt) if k not in used), None)
            if stand_in is None:
                problems.append(f"output {i} ({o.kind}: {o.what}) missing")
            else:
                used.add(stand_in)
                prev = stand_in
                problems.append(f"output {i} ({o.kind}: {o.what}): " + "; ".join(mismatch(o, got[stand_in])))
        for k in range(len(got)):
            if k not in used:
                problems.append(f"unexpected extra output {k}: {summary(got[k])}")
    else:
        unused = list(range(len(got)))
        for i, o in enumerate(exp):
            hit = next((j for j in unused if not mismatch(o, got[j])), None)
            if hit is None:
                near = f"; nearest unmatched output {unused[0]}: " + "; ".join(mismatch(o, got[unused[0]])) if unused else ""
                problems.append(f"expected frame {i} ({o.kind}: {o.what}) not in the output{near}")
            else:
                unused.remove(hit)
                matched += 1
        for j in unused:
            problems.append(f"unexpected extra output {j}: {summary(got[j])}")
    return matched, problems


# ---------------------------------------------------------------- judge


def judge(in_path, out_path):
    cases = lb_cases.build_cases()
    problems = []
    inputs = [bytes(p) for p in rdpcap(in_path)]
    built = [bytes(f) for c in cases for _, f in c.frames]
    if inputs != built:
        problems.append(f"the input pcap ({len(inputs)} frames) is not what the table builds ({len(built)}): rerun make")
    outputs = [bytes(p) for p in rdpcap(out_path)] if os.path.getsize(out_path) > 0 else []

    key_case = {c.key: i for i, c in enumerate(cases)}
    per_case = [[] for _ in cases]
    owner = []
    key_of = getattr(lb_cases, "frame_key", frame_key)
    for n, raw in enumerate(outputs):
        for cp in checksum_problems(raw):
            problems.append(f"output frame {n} ({summary(raw)}): {cp}")
        k = key_of(raw)
        ci = key_case.get(k)
        owner.append(ci)
        if ci is None:
            problems.append(f"output frame {n} belongs to no case: {summary(raw)} ({raw.hex()})")
        else:
            per_case[ci].append(raw)
    # One worker, one queue, frames in order: the cases' outputs in case order.
    last = -1
    for n, ci in enumerate(owner):
        # A case may come at any time (IPv6's start-up announcements).
        if ci is None or getattr(cases[ci], "anytime", False):
            continue
        if ci < last:
            problems.append(f"output frame {n} (case {ci}) comes after output of case {last}: out of order")
        last = max(last, ci)

    results, chosen = [], []
    for ci, c in enumerate(cases):
        scored = [(judge_alt(a, c.order, per_case[ci]), a) for a in c.alts]
        ok = [(s, a) for s, a in scored if not s[1]]
        if ok:
            (matched, cps), alt = ok[0]
        else:
            (matched, cps), alt = max(scored, key=lambda t: t[0][0])
        chosen.append(alt)
        res = {
            "case": ci,
            "name": c.name,
            "ok": not cps,
            "outcome": alt.label,
            "frames_in": len(c.frames),
            "expected_out": len(alt.outputs),
            "got_out": len(per_case[ci]),
            "problems": cps,
        }
        if c.note:
            res["note"] = c.note
        if cps and len(c.alts) > 1:
            res["problems"] = [f"(closest of {len(c.alts)} acceptable outcomes: {alt.label})"] + cps
        results.append(res)
        problems += [f"case {ci} ({c.name}): {p}" for p in res["problems"]]

    # The counters the table implies.
    expect = []

    def want(pointer, n, why, at_most=False):
        expect.append({"pointer": pointer, "want": n, "why": why, "at_most": at_most})

    all_out = [o for a in chosen for o in a.outputs]
    kinds = {}
    for o in all_out:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    want("/total/rx_packets", len(built), "input frames")
    want("/total/rx_bytes", sum(len(b) for b in built), "input bytes")
    want("/total/tx_packets", len(all_out), "expected output frames")
    want("/total/tx_bytes", sum(len(expected_bytes(o, b"")) for o in all_out), "expected output bytes")
    want("/total/forwarded", kinds.get("forwarded", 0) + kinds.get("icmp_error", 0), "frames forwarded (incl. translated ICMP errors)")
    want("/total/icmp_errors_forwarded", kinds.get("icmp_error", 0), "ICMP errors translated")
    want("/total/frag_needed_sent", kinds.get("frag_needed", 0), "ICMP frag needed originated (TUN)")
    want("/total/icmp_echo_answered", kinds.get("echo_reply", 0), "echo requests to a VIP")
    want("/total/arp_requests_answered", kinds.get("arp_reply", 0), "ARP requests for a VIP")
    want("/total/arp_requests_sent", 0, "every next hop is a static neighbour")
    want("/total/resets_sent", kinds.get("reset", 0), "TCP resets rvsd answers with")
    per_case = ", ".join(f"{c.conns_created} in case {i}" for i, c in enumerate(cases) if c.conns_created)
    notes = "".join(f"; case {i} expects none: {c.name} ({c.note})" for i, c in enumerate(cases) if c.note)
    want("/total/conns_created", sum(c.conns_created for c in cases), f"connections the cases create: {per_case}{notes}")
    want("/total/fragments_forwarded", sum(c.frags_forwarded for c in cases), "later fragments following their first")
    want("/total/fragments_queued", sum(c.frags_queued for c in cases), "later fragments that came before their first")
    reasons = DROP_REASONS + [r for r in getattr(lb_cases, "EXTRA_DROP_REASONS", []) if r not in DROP_REASONS]
    drops = {r: 0 for r in reasons}
    for c in cases:
        for r, n in c.drops.items():
            drops[r] += n
    for r in reasons:
        why = ", ".join(f"{c.name[:40]}: {c.drops[r]}" for c in cases if c.drops.get(r)) or "none expected"
        loose = sum(c.drops_at_most.get(r, 0) for c in cases)
        if loose:
            why += f"; up to {loose} more as time passes"
        want(f"/total/drops/{r}", drops[r] + loose, why, at_most=bool(loose))
    rs_conns = {k: 0 for k in lb_cases.real_server_index()}
    for a in chosen:
        for k, n in a.rs_conns.items():
            rs_conns[k] += n
    for k, (i, j) in lb_cases.real_server_index().items():
        want(f"/virtual_servers/{i}/real_servers/{j}/conns", rs_conns[k], f"connections to {k[1]} of service {k[0]}{notes}")

    verdict = {
        "ok": not problems,
        "input_frames": len(inputs),
        "output_frames": len(outputs),
        "output_bytes": sum(len(o) for o in outputs),
        "problems": problems,
        "cases": results,
        "expect_stats": expect,
    }
    print(json.dumps(verdict))
    err = sys.stderr
    print(f"judge: {len(inputs)} frames in, {len(outputs)} out, {len(all_out)} expected, {len(cases)} cases", file=err)
    for r in results:
        mark = "ok  " if r["ok"] else "FAIL"
        alt = f" [{r['outcome']}]" if r["outcome"] else ""
        print(f"judge: {mark} case {r['case']}: {r['name']}{alt} ({r['frames_in']} in, {r['got_out']}/{r['expected_out']} out)", file=err)
        for p in r["problems"]:
            print(f"judge:        {p}", file=err)
    for p in problems:
        if not p.startswith("case "):
            print(f"judge: FAIL {p}", file=err)
    print(f"judge: {'PASS' if not problems else 'FAIL: %d problem(s)' % len(problems)}", file=err)
    sys.exit(0 if not problems else 1)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "make":
        make(*sys.argv[2:])
    elif len(sys.argv) == 4 and sys.argv[1] == "judge":
        judge(*sys.argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
