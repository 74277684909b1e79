"""The table of the client-address packet test (tests/pcap_client_addr.rs):
NAT TCP connections whose virtual server carries the client's address to
the real server, with the PROXY protocol v2 header (`client_address =
"proxy-v2"`) and with the TOA option (`client_address = "toa"`). Same
topology, frame makers and table format as lb_cases.py (imported), judged
by lb_judge.py through client_addr_judge.py; every expected frame is built
with scapy (the PROXY header and the TOA option written out from their
specifications here), never with rvs's parser.
"""

import random

from scapy.all import ICMP, IP, TCP, Ether, Raw

import lb_cases
from cases_common import forwarded_ip, real_server_index_of, with_client_address
from lb_cases import (  # noqa: F401  (re-exported for lb_judge)
    ADDRESSES,
    GW_IN_IP,
    GW_IN_MAC,
    INTERFACE,
    NEIGHBORS,
    OUR_MAC,
    ROUTES,
    RS11_IP,
    ROUTER_MAC,
    RS11_MAC,
    Alt,
    Case,
    Out,
    Service,
    client_ip,
    frag_needed_back,
    from_client,
    from_server,
    nat_in,
    nat_out,
    rs_key,
    syn_options,
)

SERVICES = [
    Service("pp", "203.0.113.110", 80, "tcp", "rr", "nat", 0, [(RS11_IP, 8080, 1)]),
    Service("toa", "203.0.113.111", 80, "tcp", "rr", "nat", 0, [(RS11_IP, 8080, 1)]),
]
MODES = {"pp": "proxy-v2", "toa": "toa"}
SVC = {s.name: s for s in SERVICES}


def config_fragment() -> str:
    return with_client_address(lb_cases.config_fragment(SERVICES), MODES)


def real_server_index():
    return real_server_index_of(SERVICES)


def proxy_v2_header(src, sport, dst, dport):
    """HAProxy's proxy-protocol.txt 2.2: signature, v2 PROXY (0x21), TCP over
    IPv4 (0x11), 12 address bytes: src, dst, sport, dport."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    addr = bytes(map(int, src.split("."))) + bytes(map(int, dst.split(".")))
    return sig + b"\x21\x11" + (12).to_bytes(2, "big") + addr + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")


def toa_option(client, port):
    """Kind 254, length 8: the client's port and IPv4 address."""
    return (254, port.to_bytes(2, "big") + bytes(map(int, client.split("."))))


def regrow(out):
    """Lets scapy recompute lengths, data offset and checksums."""
    e = out.frame
    e[IP].len = None
    e[IP].chksum = None
    e[TCP].dataofs = None
    e[TCP].chksum = None
    return out


def with_payload(out, payload, what):
    e = out.frame
    e[TCP].remove_payload()
    e[TCP].add_payload(Raw(payload))
    out.what += what
    return regrow(out)


def with_seq(out, seq):
    out.frame[TCP].seq = seq
    out.what += f" seq {seq}"
    return regrow(out)


def with_ack(out, ack):
    out.frame[TCP].ack = ack
    out.what += f" ack {ack}"
    return regrow(out)


def with_mss(out, mss):
    e = out.frame
    e[TCP].options = [("MSS", mss) if k == "MSS" else (k, v) for k, v in e[TCP].options]
    out.what += f" MSS {mss}"
    return regrow(out)


def with_toa(out, client, port):
    e = out.frame
    e[TCP].options = [toa_option(client, port)] + list(e[TCP].options)
    out.what += " +TOA"
    return regrow(out)


def build_cases():
    rnd = random.Random(20261203)
    cases = []
    pp, toa = SVC["pp"], SVC["toa"]
    R, RP = RS11_IP, 8080

    # 1. PROXY v2 through NAT.
    c = Case("PROXY v2: header before the first data byte, retransmitted, seq/ack/SACK shifted both ways, an ICMP error shifted back, MSS lowered by 28", client_ip(30))
    cases.append(c)
    C, CP, V, VP = client_ip(30), 40030, pp.vip, pp.port
    H = proxy_v2_header(C, CP, V, VP)
    n = len(H)
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=1000, ident=101, options=syn_options(1111)))
    outs.append(nat_in(p, R, RP))
    p = c.add("server SYN-ACK, MSS 1460", from_server(RS11_MAC, R, RP, C, CP, "SA", seq=7000, ack=1001, ident=201, options=[("MSS", 1460), ("NOP", None), ("NOP", None), ("SAckOK", b"")]))
    outs.append(with_mss(nat_out(p, V, VP), 1460 - n))
    p = c.add("client ACK (no data: no header)", from_client(C, CP, V, VP, "A", seq=1001, ack=7001, ident=102))
    outs.append(nat_in(p, R, RP))
    req = b"GET / HTTP/1.1\r\nHost: www.example\r\n\r\n"
    first = from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=103)
    p = c.add("client request (first data)", first)
    outs.append(with_payload(nat_in(p, R, RP), H + req, " +PROXY header"))
    p = c.add("client request retransmitted", from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=104))
    outs.append(with_payload(nat_in(p, R, RP), H + req, " +PROXY header again"))
    more = b"x" * 100
    cseq = 1001 + len(req)
    p = c.add("client second segment", from_client(C, CP, V, VP, "PA", seq=cseq, ack=7001, payload=more, ident=105))
    fwd = with_seq(nat_in(p, R, RP), cseq + n)
    outs.append(fwd)
    # A router on the servers' side cannot pass it: its error reaches the
    # client quoting the client's own sequence number (else Linux ignores it).
    quoted = bytes(fwd.frame[IP])
    err = Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=C, ttl=64, id=120) / ICMP(type=3, code=4, nexthopmtu=1200) / Raw(quoted)
    c.add("frag needed from gw_in about the shifted segment", err)
    back = forwarded_ip(p)
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=V, dst=C, ttl=63, id=120) / ICMP(type=3, code=4, nexthopmtu=1200) / Raw(bytes(back))
    outs.append(Out(e, "icmp_error", "frag needed to the client from the VIP, quoting the client's own seq"))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + bytes(rnd.getrandbits(8) for _ in range(300))
    p = c.add("server response acking header and request", from_server(RS11_MAC, R, RP, C, CP, "PA", seq=7001, ack=cseq + n, payload=body, ident=202))
    outs.append(with_ack(nat_out(p, V, VP), cseq))
    # The server misses 100 bytes, then sees 50 more: it SACKs them.
    lost_end = cseq + len(more)
    sack = [("NOP", None), ("NOP", None), ("SAck", (lost_end + n + 10, lost_end + n + 60))]
    p = c.add("server dup ACK with a SACK block", from_server(RS11_MAC, R, RP, C, CP, "A", seq=7001 + len(body), ack=cseq + n, ident=203, options=sack))
    out = with_ack(nat_out(p, V, VP), cseq)
    out.frame[TCP].options = [("NOP", None), ("NOP", None), ("SAck", (lost_end + 10, lost_end + 60))]
    out.what += " SACK shifted"
    outs.append(regrow(out))
    p = c.add("server ACK inside the header only", from_server(RS11_MAC, R, RP, C, CP, "A", seq=7001 + len(body), ack=1001 + 10, ident=204))
    outs.append(with_ack(nat_out(p, V, VP), 1001))
    p = c.add("client FIN", from_client(C, CP, V, VP, "FA", seq=lost_end, ack=7001 + len(body), ident=106))
    outs.append(with_seq(nat_in(p, R, RP), lost_end + n))
    p = c.add("server FIN/ACK of the client's FIN", from_server(RS11_MAC, R, RP, C, CP, "FA", seq=7001 + len(body), ack=lost_end + n + 1, ident=205))
    outs.append(with_ack(nat_out(p, V, VP), lost_end + 1))
    c.alts = [Alt("", outs, {rs_key("pp", R, RP): 1})]
    c.conns_created = 1

    # 2. TOA through NAT.
    c = Case("TOA: option first on the handshake's ACK and the first data segment, not later; MSS lowered by 8", client_ip(31))
    cases.append(c)
    C, CP, V, VP = client_ip(31), 40031, toa.vip, toa.port
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=5000, ident=111, options=syn_options(2222)))
    outs.append(nat_in(p, R, RP))
    p = c.add("server SYN-ACK, MSS 1460", from_server(RS11_MAC, R, RP, C, CP, "SA", seq=9000, ack=5001, ident=211, options=[("MSS", 1460)]))
    outs.append(with_mss(nat_out(p, V, VP), 1452))
    p = c.add("client ACK completing the handshake", from_client(C, CP, V, VP, "A", seq=5001, ack=9001, ident=112))
    outs.append(with_toa(nat_in(p, R, RP), C, CP))
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (2223, 3333))]
    req = b"GET /toa HTTP/1.1\r\n\r\n"
    p = c.add("client request with timestamps", from_client(C, CP, V, VP, "PA", seq=5001, ack=9001, payload=req, ident=113, options=ts))
    outs.append(with_toa(nat_in(p, R, RP), C, CP))
    p = c.add("client next segment (no option)", from_client(C, CP, V, VP, "PA", seq=5001 + len(req), ack=9001, payload=b"tail", ident=114))
    outs.append(nat_in(p, R, RP))
    p = c.add("server response (untouched)", from_server(RS11_MAC, R, RP, C, CP, "PA", seq=9001, ack=5001 + len(req) + 4, payload=b"HTTP/1.1 204 No Content\r\n\r\n", ident=212))
    outs.append(nat_out(p, V, VP))
    c.alts = [Alt("", outs, {rs_key("toa", R, RP): 1})]
    c.conns_created = 1

    # 3. PROXY v2, a first data segment too big to carry the header.
    c = Case("PROXY v2: a full-MTU first segment gets ICMP frag needed (MTU - 28) back; the smaller retransmission carries the header", client_ip(32))
    cases.append(c)
    C, CP, V, VP = client_ip(32), 40032, pp.vip, pp.port
    H = proxy_v2_header(C, CP, V, VP)
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=3000, ident=131, options=[("MSS", 1460)]))
    outs.append(nat_in(p, R, RP))
    p = c.add("server SYN-ACK, MSS 1460", from_server(RS11_MAC, R, RP, C, CP, "SA", seq=8000, ack=3001, ident=231, options=[("MSS", 1460)]))
    outs.append(with_mss(nat_out(p, V, VP), 1432))
    big = bytes(rnd.getrandbits(8) for _ in range(1460))
    p = c.add("client first segment of 1500 bytes, DF (ignoring the MSS)", from_client(C, CP, V, VP, "PA", seq=3001, ack=8001, payload=big, ident=132))
    outs.append(frag_needed_back(p, 1500 - 28))
    p = c.add("client retransmission, 1000 bytes", from_client(C, CP, V, VP, "PA", seq=3001, ack=8001, payload=big[:1000], ident=133))
    outs.append(with_payload(nat_in(p, R, RP), H + big[:1000], " +PROXY header"))
    c.alts = [Alt("", outs, {rs_key("pp", R, RP): 1})]
    c.conns_created = 1
    return cases
