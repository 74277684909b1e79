"""The table of the FullNAT client-address packet test
(tests/pcap_fullnat_carry.rs), judged by lb_judge.py (run with
LB_CASES=fullnat_carry_cases): FullNAT TCP connections whose virtual
server carries the client's address to the real server, by the PROXY
protocol v2 header (`client_address = "proxy-v2"`) and by the TOA option
(`client_address = "toa"`). FullNAT's main use: the real server sees the
balancer's local address as its peer, and learns the client's only from
what rvs carries.

Same appliance, frame makers and table format as lb_cases.py; FullNAT's
expectations (fnat_in, fnat_out: LIP:LPORT <-> RIP:RPORT, VIP -> client)
from fullnat_cases.py and the carried bytes (the PROXY header, the TOA
option, shifted numbers) from client_addr_cases.py, every expected frame
built with scapy, never with rvs's parser.

    local addresses 10.1.0.1NN, one per case: the case of client
    198.51.100.NN; a connection's local port is the first of the range
    (1024), one worker and a fresh pool.
"""

import random

from scapy.all import ICMP, IP, TCP, Ether, Raw, fragment

import fullnat_cases
from cases_common import forwarded_ip, real_server_index_of, with_client_address
from client_addr_cases import proxy_v2_header, regrow, with_ack, with_mss, with_payload, with_seq, with_toa
from fullnat_cases import FIRST_PORT, Service, fnat_in, fnat_out, lip
from lb_cases import (  # noqa: F401  (re-exported for lb_judge)
    ADDRESSES,
    FRAGMENT_QUEUE,
    GW_IN_IP,
    GW_IN_MAC,
    INTERFACE,
    NEIGHBORS,
    OUR_MAC,
    ROUTER_MAC,
    ROUTES,
    RS11_IP,
    RS11_MAC,
    Alt,
    Case,
    Out,
    client_ip,
    frag_needed_back,
    from_client,
    from_server,
    rs_key,
    syn_options,
)

SERVICES = [
    Service("fpp", "203.0.113.130", 80, "tcp", [(RS11_IP, 8080, 1)], lip(60)),
    Service("ftoa", "203.0.113.131", 80, "tcp", [(RS11_IP, 8080, 1)], lip(61)),
    Service("fbig", "203.0.113.132", 80, "tcp", [(RS11_IP, 8080, 1)], lip(62)),
    Service("ffrag", "203.0.113.133", 80, "tcp", [(RS11_IP, 8080, 1)], lip(63)),
]
MODES = {"fpp": "proxy-v2", "ftoa": "toa", "fbig": "proxy-v2", "ffrag": "proxy-v2"}
SVC = {s.name: s for s in SERVICES}
CLIENT_OF_LIP = {s.local: client_ip(int(s.local.split(".")[3]) - 100) for s in SERVICES}


def config_fragment() -> str:
    """fullnat_cases.py's fragment over these services, each with its
    `client_address`."""
    return with_client_address(fullnat_cases.config_fragment(SERVICES), MODES)


def real_server_index():
    return real_server_index_of(SERVICES)


def frame_key(raw):
    """The case a frame belongs to: the client address it concerns,
    directly (outer, inner or quoted header) or through the case's local
    address."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    layer = p
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if layer.__class__.__name__ in ("IP", "IPerror"):
            for a in (layer.src, layer.dst):
                if a.startswith("198.51.100."):
                    return a
                if a in CLIENT_OF_LIP:
                    return CLIENT_OF_LIP[a]
        layer = layer.payload
    return None


def build_cases():
    rnd = random.Random(20261204)
    cases = []
    fpp, ftoa, fbig, ffrag = SVC["fpp"], SVC["ftoa"], SVC["fbig"], SVC["ffrag"]
    R, RP, LP = RS11_IP, 8080, FIRST_PORT

    # 1. PROXY v2 through FullNAT.
    c = Case(
        "FullNAT + PROXY v2: LIP:LPORT -> RIP, the header names the client and the VIP at the first data byte, "
        "retransmitted, seq shifted, ACK/SACK shifted back to the client from the VIP, ICMP errors (whole and 8-byte quotes) shifted back, MSS lowered by 28",
        client_ip(60),
    )
    cases.append(c)
    C, CP, V, VP, L = client_ip(60), 40060, fpp.vip, fpp.port, fpp.local
    H = proxy_v2_header(C, CP, V, VP)
    n = len(H)
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=1000, ident=101, options=syn_options(1111)))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add(
        "server SYN-ACK to LIP:LPORT, MSS 1460",
        from_server(RS11_MAC, R, RP, L, LP, "SA", seq=7000, ack=1001, ident=201, options=[("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")]),
    )
    outs.append(with_mss(fnat_out(p, V, VP, C, CP), 1460 - n))
    p = c.add("client ACK (no data: no header)", from_client(C, CP, V, VP, "A", seq=1001, ack=7001, ident=102))
    outs.append(fnat_in(p, L, LP, R, RP))
    req = b"GET / HTTP/1.1\r\nHost: fullnat.example\r\n\r\n"
    p = c.add("client request (first data)", from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=103))
    outs.append(with_payload(fnat_in(p, L, LP, R, RP), H + req, " +PROXY header naming the client and the VIP"))
    p = c.add("client request retransmitted", from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=104))
    outs.append(with_payload(fnat_in(p, L, LP, R, RP), H + req, " +PROXY header again"))
    more = b"y" * 100
    cseq = 1001 + len(req)
    p = c.add("client second segment", from_client(C, CP, V, VP, "PA", seq=cseq, ack=7001, payload=more, ident=105))
    fwd = with_seq(fnat_in(p, L, LP, R, RP), cseq + n)
    outs.append(fwd)
    # A router on the servers' side cannot pass it: its error, sent to the
    # local address, reaches the client from the VIP quoting the client's
    # own segment (its own sequence number, else Linux ignores it).
    err = Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=L, ttl=64, id=120) / ICMP(type=3, code=4, nexthopmtu=1200) / Raw(bytes(fwd.frame[IP]))
    c.add("frag needed from gw_in to the LIP about the shifted segment", err)
    back = forwarded_ip(p)
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=V, dst=C, ttl=63, id=120) / ICMP(type=3, code=4, nexthopmtu=1200) / Raw(bytes(back))
    outs.append(Out(e, "icmp_error", "frag needed to the client from the VIP, quoting the client's own segment and seq"))
    # A router quoting only 8 bytes of TCP (RFC 792): the number still
    # goes back, the ICMP checksum with it.
    err = Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=L, ttl=64, id=121) / ICMP(type=11, code=0) / Raw(bytes(fwd.frame[IP])[:28])
    c.add("time exceeded from gw_in to the LIP quoting 8 bytes of the shifted segment", err)
    quote = bytes(back)[:20] + bytes(p[TCP])[:8]
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=V, dst=C, ttl=63, id=121) / ICMP(type=11, code=0) / Raw(quote)
    outs.append(Out(e, "icmp_error", "time exceeded to the client from the VIP, 8 bytes quoted, the client's own seq"))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + bytes(rnd.getrandbits(8) for _ in range(300))
    p = c.add("server response acking header and request", from_server(RS11_MAC, R, RP, L, LP, "PA", seq=7001, ack=cseq + n, payload=body, ident=202))
    outs.append(with_ack(fnat_out(p, V, VP, C, CP), cseq))
    # The server misses the 100 bytes, then sees 50 more: it SACKs them.
    lost_end = cseq + len(more)
    sack = [("NOP", None), ("NOP", None), ("SAck", (lost_end + n + 10, lost_end + n + 60))]
    p = c.add("server dup ACK with a SACK block", from_server(RS11_MAC, R, RP, L, LP, "A", seq=7001 + len(body), ack=cseq + n, ident=203, options=sack))
    out = with_ack(fnat_out(p, V, VP, C, CP), cseq)
    out.frame[TCP].options = [("NOP", None), ("NOP", None), ("SAck", (lost_end + 10, lost_end + 60))]
    out.what += " SACK shifted"
    outs.append(regrow(out))
    p = c.add("server ACK inside the header only", from_server(RS11_MAC, R, RP, L, LP, "A", seq=7001 + len(body), ack=1001 + 10, ident=204))
    outs.append(with_ack(fnat_out(p, V, VP, C, CP), 1001))
    sseq = 7001 + len(body)
    p = c.add("client FIN", from_client(C, CP, V, VP, "FA", seq=lost_end, ack=sseq, ident=106))
    outs.append(with_seq(fnat_in(p, L, LP, R, RP), lost_end + n))
    p = c.add("server FIN/ACK of the client's FIN", from_server(RS11_MAC, R, RP, L, LP, "FA", seq=sseq, ack=lost_end + n + 1, ident=205))
    outs.append(with_ack(fnat_out(p, V, VP, C, CP), lost_end + 1))
    p = c.add("client last ACK", from_client(C, CP, V, VP, "A", seq=lost_end + 1, ack=sseq + 1, ident=107))
    outs.append(with_seq(fnat_in(p, L, LP, R, RP), lost_end + 1 + n))
    c.alts = [Alt("", outs, {rs_key("fpp", R, RP): 1})]
    c.conns_created = 1

    # 2. TOA through FullNAT.
    c = Case(
        "FullNAT + TOA: LIP:LPORT -> RIP, option 254 with the client's address and port first on the handshake's ACK "
        "and the first data segment, not later; MSS lowered by 8",
        client_ip(61),
    )
    cases.append(c)
    C, CP, V, VP, L = client_ip(61), 40061, ftoa.vip, ftoa.port, ftoa.local
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=5000, ident=111, options=syn_options(2222)))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add("server SYN-ACK to LIP:LPORT, MSS 1460", from_server(RS11_MAC, R, RP, L, LP, "SA", seq=9000, ack=5001, ident=211, options=[("MSS", 1460)]))
    outs.append(with_mss(fnat_out(p, V, VP, C, CP), 1452))
    p = c.add("client ACK completing the handshake", from_client(C, CP, V, VP, "A", seq=5001, ack=9001, ident=112))
    outs.append(with_toa(fnat_in(p, L, LP, R, RP), C, CP))
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (2223, 3333))]
    req = b"GET /toa HTTP/1.1\r\n\r\n"
    p = c.add("client request with timestamps", from_client(C, CP, V, VP, "PA", seq=5001, ack=9001, payload=req, ident=113, options=ts))
    outs.append(with_toa(fnat_in(p, L, LP, R, RP), C, CP))
    p = c.add("client next segment (no option)", from_client(C, CP, V, VP, "PA", seq=5001 + len(req), ack=9001, payload=b"tail", ident=114))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add(
        "server response (numbers untouched)",
        from_server(RS11_MAC, R, RP, L, LP, "PA", seq=9001, ack=5001 + len(req) + 4, payload=b"HTTP/1.1 204 No Content\r\n\r\n", ident=212),
    )
    outs.append(fnat_out(p, V, VP, C, CP))
    c.alts = [Alt("", outs, {rs_key("ftoa", R, RP): 1})]
    c.conns_created = 1

    # 3. PROXY v2 through FullNAT, a first data segment too big to carry
    # the header: the error quotes what the client sent (before the rewrite).
    c = Case(
        "FullNAT + PROXY v2: a full-MTU first segment gets ICMP frag needed (MTU - 28) back quoting client -> VIP; "
        "the smaller retransmission carries the header to LIP:LPORT -> RIP",
        client_ip(62),
    )
    cases.append(c)
    C, CP, V, VP, L = client_ip(62), 40062, fbig.vip, fbig.port, fbig.local
    H = proxy_v2_header(C, CP, V, VP)
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=3000, ident=131, options=[("MSS", 1460)]))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add("server SYN-ACK to LIP:LPORT, MSS 1460", from_server(RS11_MAC, R, RP, L, LP, "SA", seq=8000, ack=3001, ident=231, options=[("MSS", 1460)]))
    outs.append(with_mss(fnat_out(p, V, VP, C, CP), 1432))
    big = bytes(rnd.getrandbits(8) for _ in range(1460))
    p = c.add("client first segment of 1500 bytes, DF (ignoring the MSS)", from_client(C, CP, V, VP, "PA", seq=3001, ack=8001, payload=big, ident=132))
    outs.append(frag_needed_back(p, 1500 - 28))
    p = c.add("client retransmission, 1000 bytes", from_client(C, CP, V, VP, "PA", seq=3001, ack=8001, payload=big[:1000], ident=133))
    outs.append(with_payload(fnat_in(p, L, LP, R, RP), H + big[:1000], " +PROXY header"))
    c.alts = [Alt("", outs, {rs_key("fbig", R, RP): 1})]
    c.conns_created = 1

    # 4. PROXY v2 through FullNAT, IP fragments (DF clear, cut by a router
    # before rvs): a first data segment in fragments cannot take the header
    # (no reassembly): dropped, its later fragment with it, never sent on
    # alone; the client's retransmission in one piece carries it. Later
    # segments in fragments go on: the first fragment's sequence number
    # shifted (its checksum covers the whole datagram), the later one
    # following with its addresses rewritten; a reply in fragments comes
    # back with its acknowledgment shifted back.
    c = Case(
        "FullNAT + PROXY v2 fragments: a fragmented first data segment is dropped whole (never half sent); "
        "later fragmented segments go both ways with numbers shifted",
        client_ip(63),
    )
    cases.append(c)
    C, CP, V, VP, L = client_ip(63), 40063, ffrag.vip, ffrag.port, ffrag.local
    H = proxy_v2_header(C, CP, V, VP)
    n = len(H)
    outs = []

    def cut(e, size):
        return fragment(e, fragsize=size)

    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=100, ident=140, options=[("MSS", 1460)]))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add("server SYN-ACK to LIP:LPORT", from_server(RS11_MAC, R, RP, L, LP, "SA", seq=900, ack=101, ident=240, options=[("MSS", 1460)]))
    outs.append(with_mss(fnat_out(p, V, VP, C, CP), 1432))
    data = bytes(rnd.getrandbits(8) for _ in range(1200))
    first = from_client(C, CP, V, VP, "PA", seq=101, ack=901, payload=data, ident=141, ipflags=0)
    f0, f1 = cut(first, 800)
    c.add("first data segment: its later fragment first", f1)
    c.add("first data segment: its first fragment", f0)
    p = c.add("the first data segment again, in one piece", from_client(C, CP, V, VP, "PA", seq=101, ack=901, payload=data, ident=142))
    outs.append(with_payload(fnat_in(p, L, LP, R, RP), H + data, " +PROXY header"))
    more = bytes(rnd.getrandbits(8) for _ in range(1200))
    seg = from_client(C, CP, V, VP, "PA", seq=101 + len(data), ack=901, payload=more, ident=143, ipflags=0)
    for i, f in enumerate(cut(seg, 800)):
        c.add(f"second segment, fragment {i}", f)
    whole = with_seq(fnat_in(seg, L, LP, R, RP), 101 + len(data) + n)
    whole.frame = Ether(bytes(whole.frame))
    outs += [Out(f, "forwarded", f"fragment {i} of {whole.what}") for i, f in enumerate(cut(whole.frame, 800))]
    body = bytes(rnd.getrandbits(8) for _ in range(1200))
    reply = from_server(RS11_MAC, R, RP, L, LP, "PA", seq=901, ack=101 + len(data) + len(more) + n, payload=body, ident=241)
    reply[IP].flags = 0
    reply = Ether(bytes(reply))
    for i, f in enumerate(cut(reply, 800)):
        c.add(f"reply in fragments, fragment {i}", f)
    back = with_ack(fnat_out(reply, V, VP, C, CP), 101 + len(data) + len(more))
    back.frame = Ether(bytes(back.frame))
    outs += [Out(f, "forwarded", f"fragment {i} of {back.what}") for i, f in enumerate(cut(back.frame, 800))]
    c.alts = [Alt("", outs, {rs_key("ffrag", R, RP): 1})]
    c.conns_created = 1
    c.frags_forwarded = 2
    c.frags_queued = 1
    c.drops = {"fragment": 1, "fragment_unmatched": 1}
    return cases
