"""The table of the load-balancing packet test (tests/pcap_lb.rs): the
topology, the virtual services, and one row per case with its input
frames, the output frames rvsd must send for them and what its counters
must say. Built with scapy only, never with rvs's parser; lb_judge.py
writes the input pcap and the config from it, and judges rvsd's output.

One rvsd port (net_pcap has one) carries everything:

    rvsd 02:00:00:00:00:01, 203.0.113.2/24 (outside) and 10.1.0.1/24 (inside)
    router   203.0.113.1   02:00:00:00:00:fe   default route (clients 198.51.100.0/24)
    rs11     10.1.0.11     02:00:00:00:01:0b
    rs12     10.1.0.12     02:00:00:00:01:0c
    gw_in    10.1.0.254    02:00:00:00:01:fe   route 10.2.0.0/16 (TUN and far servers)

every neighbour static, so rvsd never needs to ARP.

A case's output frames are told apart from other cases' by the client
address they concern (each case has its own client in 198.51.100.0/24),
found in the outer, inner (IPIP) or quoted (ICMP error) header. Expected
frames are scapy packets whose checksums scapy computes (fields left None),
so an exact byte comparison also checks every checksum. Where rvsd picks a
value (the IP identification of packets it originates) the field is named
in `free` and taken from the output before the comparison.

Where a case's outcome depends on a choice rvsd makes at random (which real
server a source hash or a persistence template lands on, where a wrr cycle
starts), the case lists every acceptable outcome as an alternative.
"""

import random
from dataclasses import dataclass, field

from scapy.all import ARP, GRE, ICMP, IP, TCP, UDP, Ether, IPv6, Raw, fragment
from scapy.layers.inet import in4_chksum

from cases_common import forwarded_ip, forwarded_quote8, network_config, real_server_index_of, real_servers_config

# ---------------------------------------------------------------- topology

OUR_MAC = "02:00:00:00:00:01"
OUTSIDE_IP = "203.0.113.2"
INSIDE_IP = "10.1.0.1"
ADDRESSES = [OUTSIDE_IP + "/24", INSIDE_IP + "/24"]
INTERFACE = "test0"  # the name tests/support's single_port_config gives it

ROUTER_IP, ROUTER_MAC = "203.0.113.1", "02:00:00:00:00:fe"
RS11_IP, RS11_MAC = "10.1.0.11", "02:00:00:00:01:0b"
RS12_IP, RS12_MAC = "10.1.0.12", "02:00:00:00:01:0c"
GW_IN_IP, GW_IN_MAC = "10.1.0.254", "02:00:00:00:01:fe"
TUN_RS_IP = "10.2.0.21"
FAR_RS_IP = "10.2.0.31"
OTHER_MAC = "02:00:00:00:00:99"

NEIGHBORS = [(ROUTER_IP, ROUTER_MAC), (RS11_IP, RS11_MAC), (RS12_IP, RS12_MAC), (GW_IN_IP, GW_IN_MAC)]
ROUTES = [("0.0.0.0/0", ROUTER_IP), ("10.2.0.0/16", GW_IN_IP)]

# The MAC a packet to an address leaves with (the next hop's).
NEXT_HOP_MAC = {RS11_IP: RS11_MAC, RS12_IP: RS12_MAC, TUN_RS_IP: GW_IN_MAC, FAR_RS_IP: GW_IN_MAC}

PORT_MTU = 1500  # net_pcap's default MTU
TUN_MTU = PORT_MTU - 20


@dataclass
class Service:
    name: str
    vip: str
    port: int
    protocol: str
    scheduler: str
    forward: str
    persistence_s: int
    real_servers: list  # (address, port, weight)


SERVICES = [
    Service("web", "203.0.113.100", 80, "tcp", "wrr", "nat", 0, [(RS11_IP, 8080, 3), (RS12_IP, 8080, 1)]),
    Service("dns", "203.0.113.100", 53, "udp", "rr", "nat", 0, [(RS11_IP, 5353, 1)]),
    Service("dr", "203.0.113.101", 80, "tcp", "rr", "dr", 0, [(RS11_IP, 80, 1)]),
    Service("tun", "203.0.113.102", 80, "tcp", "rr", "tun", 0, [(TUN_RS_IP, 80, 1)]),
    Service("wrr", "203.0.113.103", 80, "tcp", "wrr", "nat", 0, [(RS11_IP, 8080, 3), (RS12_IP, 8080, 1)]),
    Service("far", "203.0.113.104", 80, "tcp", "rr", "nat", 0, [(FAR_RS_IP, 8080, 1)]),
    Service("sh", "203.0.113.105", 80, "tcp", "sh", "nat", 0, [(RS11_IP, 8080, 1), (RS12_IP, 8080, 1)]),
    Service("persist", "203.0.113.106", 80, "tcp", "rr", "nat", 300, [(RS11_IP, 8080, 1), (RS12_IP, 8080, 1)]),
    Service("one", "203.0.113.107", 80, "tcp", "rr", "nat", 0, [(RS12_IP, 8080, 1)]),
]
SVC = {s.name: s for s in SERVICES}


def config_fragment(services=None) -> str:
    """Routes, neighbours and virtual servers (`services`, SERVICES when
    None), in rvsd's TOML (appended to tests/support's single_port_config,
    whose interface is `test0`)."""
    out = network_config(ROUTES, NEIGHBORS, INTERFACE)
    for s in SERVICES if services is None else services:
        out += [
            "[[virtual_server]]",
            f'name = "{s.name}"',
            f'address = "{s.vip}:{s.port}"',
            f'protocol = "{s.protocol}"',
            f'scheduler = "{s.scheduler}"',
            f'forward = "{s.forward}"',
            f"persistence_timeout_s = {s.persistence_s}",
            "",
            "  [virtual_server.health_check]",
            '  type = "none"',
            "",
        ]
        out += real_servers_config(s.real_servers)
    return "\n".join(out)


# ------------------------------------------------------------ the table


@dataclass
class Out:
    """One frame rvsd must send."""

    frame: object  # a scapy packet; checksums left None so scapy computes them
    kind: str  # forwarded | icmp_error | frag_needed | echo_reply | arp_reply
    what: str  # for messages
    free: tuple = ()  # "IP.id": fields rvsd chooses (the outer header's)


@dataclass
class Alt:
    """One acceptable outcome of a case."""

    label: str
    outputs: list
    rs_conns: dict  # {(service, "ip:port"): connections scheduled to it}


@dataclass
class Case:
    name: str
    key: str  # the client address whose frames are this case's (or "arp")
    frames: list = field(default_factory=list)  # (description, scapy packet or raw bytes)
    alts: list = field(default_factory=list)
    order: str = "ordered"  # ordered | multiset
    conns_created: int = 0
    drops: dict = field(default_factory=dict)
    # Drops whose count depends on timing: reason -> the most there may be.
    drops_at_most: dict = field(default_factory=dict)
    frags_forwarded: int = 0  # later fragments sent on after their first
    frags_queued: int = 0  # later fragments that waited for their first
    note: str = ""

    def add(self, what, frame):
        self.frames.append((what, frame))
        return frame


def client_ip(n: int) -> str:
    return f"198.51.100.{n}"


# ---------------------------------------------------------- frame makers


def from_client(src, sport, dst, dport, flags="S", seq=1000, ack=0, payload=b"", ttl=64, ident=1, options=None, ipflags="DF", **ip):
    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240, options=options or [])
    p = Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=src, dst=dst, ttl=ttl, id=ident, flags=ipflags, **ip) / tcp
    if payload:
        p = p / Raw(payload)
    return p


def from_server(src_mac, src, sport, dst, dport, flags="SA", seq=5000, ack=0, payload=b"", ttl=64, ident=1, options=None):
    tcp = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=65160, options=options or [])
    p = Ether(dst=OUR_MAC, src=src_mac) / IP(src=src, dst=dst, ttl=ttl, id=ident, flags="DF") / tcp
    if payload:
        p = p / Raw(payload)
    return p


def udp_from_client(src, sport, dst, dport, payload, ttl=64, ident=1, chksum=None):
    return Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=src, dst=dst, ttl=ttl, id=ident) / UDP(sport=sport, dport=dport, chksum=chksum) / Raw(payload)


def udp_from_server(src_mac, src, sport, dst, dport, payload, ttl=64, ident=1, chksum=None):
    return Ether(dst=OUR_MAC, src=src_mac) / IP(src=src, dst=dst, ttl=ttl, id=ident) / UDP(sport=sport, dport=dport, chksum=chksum) / Raw(payload)


def l4(p):
    return p[TCP] if TCP in p else p[UDP]


def _fresh(p):
    """A copy whose IPv4 and transport checksums scapy recomputes (a UDP
    checksum of zero, "none", stays zero)."""
    e = p.copy()
    e[IP].chksum = None
    if TCP in e:
        e[TCP].chksum = None
    if UDP in e and e[UDP].chksum != 0:
        e[UDP].chksum = None
    return e


def nat_in(p, rip, rport):
    """What rvsd sends for client packet `p` on a NAT connection to rip:rport."""
    e = _fresh(p)
    e[Ether].dst = NEXT_HOP_MAC[rip]
    e[Ether].src = OUR_MAC
    e[IP].dst = rip
    e[IP].ttl -= 1
    l4(e).dport = rport
    return Out(e, "forwarded", f"{p[IP].src}:{l4(p).sport} -> {rip}:{rport} {flags_of(p)}")


def nat_out(p, vip, vport):
    """What rvsd sends for real server packet `p` on a NAT connection."""
    e = _fresh(p)
    e[Ether].dst = ROUTER_MAC
    e[Ether].src = OUR_MAC
    e[IP].src = vip
    e[IP].ttl -= 1
    l4(e).sport = vport
    return Out(e, "forwarded", f"{vip}:{vport} -> {p[IP].dst}:{l4(p).dport} {flags_of(p)} (from {p[IP].src})")


def dr_in(p, rip):
    e = p.copy()
    e[Ether].dst = NEXT_HOP_MAC[rip]
    e[Ether].src = OUR_MAC
    return Out(e, "forwarded", f"DR {p[IP].src}:{l4(p).sport} -> {p[IP].dst}:{l4(p).dport} to {rip}'s MAC {flags_of(p)}")


def tun_in(p, rip):
    inner = bytes(p[IP])
    df = "DF" if p[IP].flags.DF else 0
    outer = IP(src=INSIDE_IP, dst=rip, ttl=64, proto=4, tos=p[IP].tos, flags=df, id=0) / Raw(inner)
    e = Ether(dst=NEXT_HOP_MAC[rip], src=OUR_MAC) / outer
    what = f"{p[IP].src}:{l4(p).sport} -> {p[IP].dst} {flags_of(p)}" if (TCP in p or UDP in p) else p.summary()
    return Out(e, "forwarded", f"IPIP to {rip} of {what} ({len(inner)} bytes)", ("IP.id",))


def frag_needed_back(p, mtu):
    quoted = bytes(p[IP])[: 576 - 28]
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=OUTSIDE_IP, dst=p[IP].src, ttl=64, id=0, flags=0, tos=0) / ICMP(
        type=3, code=4, nexthopmtu=mtu
    ) / Raw(quoted)
    return Out(e, "frag_needed", f"ICMP frag needed (MTU {mtu}) to {p[IP].src}", ("IP.id",))


def flags_of(p):
    if TCP in p:
        return str(p[TCP].flags) + (f" +{len(p[TCP].payload)}B" if len(p[TCP].payload) else "")
    return f"UDP {len(p[UDP].payload)}B"


def syn_options(ts):
    return [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (ts, 0)), ("NOP", None), ("WScale", 7)]


def rs_key(service, ip, port):
    return (service, f"{ip}:{port}")


# ------------------------------------------------------------- the cases


def build_cases():
    rnd = random.Random(20240601)
    cases = []

    def new(name, key, **kw):
        c = Case(name=name, key=key, **kw)
        cases.append(c)
        return c

    web, dns, dr, tun, wrr, far, sh, persist, one = (SVC[n] for n in ["web", "dns", "dr", "tun", "wrr", "far", "sh", "persist", "one"])

    # 1. NAT TCP: handshake, data both ways, teardown; then a SYN that
    #    reuses the closed tuple. The first two picks of a 3:1 wrr are the
    #    weight-3 server wherever the cycle starts.
    c = new("NAT TCP: handshake with options, data both ways, FIN/ACK teardown, then a new SYN on the closed tuple", client_ip(10))
    C, CP, V, VP, R, RP = client_ip(10), 40001, web.vip, web.port, RS11_IP, 8080
    outs = []
    syn = c.add("client SYN with MSS/SACK/TS/WS", from_client(C, CP, V, VP, "S", seq=1000, ident=101, options=syn_options(1111)))
    outs.append(nat_in(syn, R, RP))
    synack = c.add(
        "server SYN-ACK",
        from_server(RS11_MAC, R, RP, C, CP, "SA", seq=7000, ack=1001, ident=201,
                    options=[("MSS", 1400), ("SAckOK", b""), ("Timestamp", (2222, 1111)), ("NOP", None), ("WScale", 9)]),
    )
    outs.append(nat_out(synack, V, VP))
    ack = c.add("client ACK", from_client(C, CP, V, VP, "A", seq=1001, ack=7001, ident=102))
    outs.append(nat_in(ack, R, RP))
    req = b"GET /index.html HTTP/1.1\r\nHost: www.example\r\nUser-Agent: rvs-test\r\n\r\n"
    p = c.add("client request (PSH/ACK)", from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=103))
    outs.append(nat_in(p, R, RP))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 1200\r\n\r\n" + bytes(rnd.getrandbits(8) for _ in range(1200))
    p = c.add("server response (PSH/ACK, 1241 bytes)", from_server(RS11_MAC, R, RP, C, CP, "PA", seq=7001, ack=1001 + len(req), payload=body, ident=202))
    outs.append(nat_out(p, V, VP))
    p = c.add("client ACK of the response", from_client(C, CP, V, VP, "A", seq=1001 + len(req), ack=7001 + len(body), ident=104))
    outs.append(nat_in(p, R, RP))
    cseq, sseq = 1001 + len(req), 7001 + len(body)
    p = c.add("client FIN", from_client(C, CP, V, VP, "FA", seq=cseq, ack=sseq, ident=105))
    outs.append(nat_in(p, R, RP))
    p = c.add("server ACK of the FIN", from_server(RS11_MAC, R, RP, C, CP, "A", seq=sseq, ack=cseq + 1, ident=203))
    outs.append(nat_out(p, V, VP))
    p = c.add("server FIN", from_server(RS11_MAC, R, RP, C, CP, "FA", seq=sseq, ack=cseq + 1, ident=204))
    outs.append(nat_out(p, V, VP))
    p = c.add("client ACK of the server's FIN", from_client(C, CP, V, VP, "A", seq=cseq + 1, ack=sseq + 1, ident=106))
    outs.append(nat_in(p, R, RP))
    syn2 = c.add("client SYN reusing the closed tuple", from_client(C, CP, V, VP, "S", seq=90000, ident=107, options=syn_options(3333)))
    outs.append(nat_in(syn2, R, RP))
    p = c.add("server SYN-ACK on the new connection", from_server(RS11_MAC, R, RP, C, CP, "SA", seq=50000, ack=90001, ident=205, options=[("MSS", 1400)]))
    outs.append(nat_out(p, V, VP))
    c.alts = [Alt("", outs, {rs_key("web", R, RP): 2})]
    c.conns_created = 2

    # 2. UDP NAT, checksums: normal, zero ("none") both ways, and one whose
    #    translated checksum computes to 0 and must be sent as 0xffff.
    c = new("UDP NAT: normal and zero-checksum datagrams both ways, a translated checksum of 0 sent as 0xffff", client_ip(20))
    C, V, VP, R, RP = client_ip(20), dns.vip, dns.port, RS11_IP, 5353
    outs = []
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01"
    p = c.add("client query, checksum set", udp_from_client(C, 5001, V, VP, q, ident=301))
    outs.append(nat_in(p, R, RP))
    p = c.add("client query, checksum 0 (none)", udp_from_client(C, 5002, V, VP, q, ident=302, chksum=0))
    outs.append(nat_in(p, R, RP))
    p = c.add("server answer, checksum set", udp_from_server(RS11_MAC, R, RP, C, 5001, q + b"\xc0\x0c" * 8, ident=401))
    outs.append(nat_out(p, V, VP))
    p = c.add("server answer, checksum 0 (none)", udp_from_server(RS11_MAC, R, RP, C, 5002, q + b"\xc0\x0c" * 8, ident=402, chksum=0))
    outs.append(nat_out(p, V, VP))
    # Two payload bytes chosen so the translated datagram's checksum
    # computes to 0, which UDP sends as 0xffff (0 would mean "none").
    pay = bytearray(b"rvs-zero-sum\0\0!!")
    xx_at = 12  # even: UDP offset 20
    probe = udp_from_client(C, 5003, R, RP, bytes(pay), ident=303)  # as translated
    raw_udp = bytearray(bytes(probe[UDP]))
    raw_udp[6:8] = b"\0\0"
    s = (~in4_chksum(17, probe[IP], bytes(raw_udp))) & 0xFFFF  # the ones' complement sum
    pay[xx_at : xx_at + 2] = ((~s) & 0xFFFF).to_bytes(2, "big")
    p = c.add("client query whose translated checksum computes to 0", udp_from_client(C, 5003, V, VP, bytes(pay), ident=303))
    o = nat_in(p, R, RP)
    assert bytes(o.frame[UDP])[6:8] == b"\xff\xff", bytes(o.frame[UDP])[6:8].hex()
    outs.append(o)
    c.alts = [Alt("", outs, {rs_key("dns", R, RP): 3})]
    c.conns_created = 3

    # 3. DR: only the destination MAC changes.
    c = new("DR: only the destination MAC changes (source MAC rvsd's), IP and TCP bytes identical", client_ip(30))
    C, CP, V, VP = client_ip(30), 40030, dr.vip, dr.port
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=100, ident=501, ttl=57, options=syn_options(5)))
    outs.append(dr_in(p, RS11_IP))
    p = c.add("client ACK", from_client(C, CP, V, VP, "A", seq=101, ack=3001, ident=502, ttl=57))
    outs.append(dr_in(p, RS11_IP))
    p = c.add("client data", from_client(C, CP, V, VP, "PA", seq=101, ack=3001, payload=b"hello over DR\n" * 20, ident=503, ttl=57, tos=0x28))
    outs.append(dr_in(p, RS11_IP))
    # The real server answers the client directly; an ICMP error about
    # such a reply comes to the VIP and goes on to the real server, TTL - 1.
    reply = IP(src=V, dst=C, ttl=64, id=3001, flags="DF") / TCP(sport=VP, dport=CP, flags="SA", seq=3000, ack=101)
    err = c.add(
        "port unreachable from the router about the real server's direct reply (VIP -> client)",
        Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=ROUTER_IP, dst=V, ttl=61, id=504) / ICMP(type=3, code=3) / Raw(bytes(reply)[:28]),
    )
    e = err.copy()
    e[Ether].dst, e[Ether].src = RS11_MAC, OUR_MAC
    e[IP].ttl -= 1
    e[IP].chksum = None
    outs.append(Out(e, "icmp_error", "port unreachable on to the real server's MAC, TTL - 1, otherwise unchanged"))
    c.alts = [Alt("", outs, {rs_key("dr", RS11_IP, 80): 1})]
    c.conns_created = 1

    # 4. TUN: IPIP from 10.1.0.1 to the real server behind gw_in; a packet
    #    that fits exactly; one too big with DF: ICMP frag needed back.
    c = new("TUN: IPIP (src 10.1.0.1, TTL 64, DF and TOS copied), exact fit at 1500, too big with DF -> ICMP 3/4 MTU 1480", client_ip(40))
    C, CP, V, VP = client_ip(40), 40040, tun.vip, tun.port
    outs = []
    p = c.add("client SYN (DF)", from_client(C, CP, V, VP, "S", seq=10, ident=601, ttl=50, options=syn_options(7)))
    outs.append(tun_in(p, TUN_RS_IP))
    p = c.add("client ACK without DF, TOS 0x10", from_client(C, CP, V, VP, "A", seq=11, ack=801, ident=602, ttl=50, ipflags=0, tos=0x10))
    outs.append(tun_in(p, TUN_RS_IP))
    fit = TUN_MTU - 40
    p = c.add(f"client data: IP {TUN_MTU} bytes, DF (fits exactly)", from_client(C, CP, V, VP, "A", seq=11, ack=801, payload=bytes(rnd.getrandbits(8) for _ in range(fit)), ident=603, ttl=50))
    assert len(p[IP]) == TUN_MTU
    outs.append(tun_in(p, TUN_RS_IP))
    big = c.add("client data: IP 1500 bytes, DF (too big to tunnel)", from_client(C, CP, V, VP, "PA", seq=11 + fit, ack=801, payload=bytes(rnd.getrandbits(8) for _ in range(1460)), ident=604, ttl=50))
    assert len(big[IP]) == 1500
    outs.append(frag_needed_back(big, TUN_MTU))
    reply = IP(src=V, dst=C, ttl=64, id=4001, flags="DF") / TCP(sport=VP, dport=CP, flags="SA", seq=800, ack=11)
    err = c.add(
        "port unreachable from the router about the real server's direct reply (VIP -> client)",
        Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=ROUTER_IP, dst=V, ttl=61, id=605) / ICMP(type=3, code=3) / Raw(bytes(reply)[:28]),
    )
    o = tun_in(err, TUN_RS_IP)
    outs.append(Out(o.frame, "icmp_error", "the port unreachable tunnelled to the real server, unchanged inside", o.free))
    c.alts = [Alt("", outs, {rs_key("tun", TUN_RS_IP, 80): 1})]
    c.conns_created = 1

    # 5. ICMP errors about a NAT connection, both ways.
    c = new("NAT ICMP errors: frag needed about client->RIP goes to the client from the VIP; port unreachable about VIP->client goes to the RIP", client_ip(50))
    C, CP, V, VP, R, RP = client_ip(50), 40050, far.vip, far.port, FAR_RS_IP, 8080
    outs = []
    syn = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=1, ident=701, options=syn_options(9)))
    fwd = nat_in(syn, R, RP)
    outs.append(fwd)
    quoted = bytes(fwd.frame[IP])  # the SYN as rvsd forwarded it, as gw_in quotes it
    err = Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=C, ttl=64, id=702) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(quoted)
    c.add("frag needed (MTU 1400) from gw_in about the forwarded SYN, to the client", err)
    back = forwarded_ip(syn)
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=V, dst=C, ttl=63, id=702) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(bytes(back))
    outs.append(Out(e, "icmp_error", "frag needed to the client from the VIP, quoting client -> VIP:80"))
    synack = c.add("server SYN-ACK", from_server(GW_IN_MAC, R, RP, C, CP, "SA", seq=100, ack=2, ident=703, options=[("MSS", 1360)]))
    reply = nat_out(synack, V, VP)
    outs.append(reply)
    quoted = bytes(reply.frame[IP])[:28]  # header + 8 bytes, as RFC 792 asks
    err = Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=ROUTER_IP, dst=V, ttl=60, id=704) / ICMP(type=3, code=3) / Raw(quoted)
    c.add("port unreachable from the router about the VIP's SYN-ACK (8 bytes quoted)", err)
    qb = forwarded_quote8(synack)  # the reply as the server sent it, cut the same
    e = Ether(dst=GW_IN_MAC, src=OUR_MAC) / IP(src=ROUTER_IP, dst=R, ttl=59, id=704) / ICMP(type=3, code=3) / Raw(qb)
    outs.append(Out(e, "icmp_error", "port unreachable on to the RIP, quoting RIP:8080 -> client"))
    c.alts = [Alt("", outs, {rs_key("far", R, RP): 1})]
    c.conns_created = 1

    # 6. TTL: on a live UDP connection both ways, and a SYN with TTL 1.
    c = new("TTL: a packet that arrives with TTL 1 (or 0) is not forwarded, either way", client_ip(60))
    C, V, VP, R, RP = client_ip(60), dns.vip, dns.port, RS11_IP, 5353
    outs = []
    p = c.add("client datagram, TTL 2 (leaves with 1)", udp_from_client(C, 6000, V, VP, b"ttl two", ttl=2, ident=801))
    outs.append(nat_in(p, R, RP))
    c.add("client datagram on that connection, TTL 1", udp_from_client(C, 6000, V, VP, b"ttl one", ttl=1, ident=802))
    c.add("client datagram on that connection, TTL 0", udp_from_client(C, 6000, V, VP, b"ttl zero", ttl=0, ident=803))
    c.add("server datagram on that connection, TTL 1", udp_from_server(RS11_MAC, R, RP, C, 6000, b"reply ttl one", ttl=1, ident=804))
    p = c.add("server datagram on that connection, TTL 64", udp_from_server(RS11_MAC, R, RP, C, 6000, b"reply ttl 64", ident=805))
    outs.append(nat_out(p, V, VP))
    c.alts = [Alt("", outs, {rs_key("dns", R, RP): 1})]
    c.conns_created = 1
    c.drops = {"ttl_expired": 3}

    c = new("TTL: a SYN with TTL 1 to a VIP is dropped and creates no connection", client_ip(61))
    c.add("client SYN, TTL 1", from_client(client_ip(61), 40061, one.vip, one.port, "S", ttl=1, ident=811))
    c.alts = [Alt("", [], {})]
    c.drops = {"ttl_expired": 1}

    # 7. The VIP answers ping and ARP; a retransmitted SYN stays on its connection.
    c = new("VIP answers ICMP echo; a retransmitted SYN is forwarded on the same connection", client_ip(70))
    C = client_ip(70)
    outs = []
    ping = c.add("echo request to a VIP", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=one.vip, ttl=55, id=901) / ICMP(type=8, id=77, seq=1) / Raw(b"ping the vip"))
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=one.vip, dst=C, ttl=64, id=901) / ICMP(type=0, id=77, seq=1) / Raw(b"ping the vip")
    outs.append(Out(e, "echo_reply", "echo reply from the VIP"))
    syn = c.add("client SYN", from_client(C, 40070, one.vip, one.port, "S", seq=5, ident=902, options=syn_options(1)))
    outs.append(nat_in(syn, RS12_IP, 8080))
    syn = c.add("the same SYN again (retransmitted)", from_client(C, 40070, one.vip, one.port, "S", seq=5, ident=903, options=syn_options(1)))
    outs.append(nat_in(syn, RS12_IP, 8080))
    c.alts = [Alt("", outs, {rs_key("one", RS12_IP, 8080): 1})]
    c.conns_created = 1

    c = new("ARP for a VIP on the connected subnet is answered", "arp")
    c.add("who-has 203.0.113.100 from the router", Ether(dst="ff:ff:ff:ff:ff:ff", src=ROUTER_MAC) / ARP(op=1, hwsrc=ROUTER_MAC, psrc=ROUTER_IP, pdst=web.vip))
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / ARP(op=2, hwsrc=OUR_MAC, psrc=web.vip, hwdst=ROUTER_MAC, pdst=ROUTER_IP)
    c.alts = [Alt("", [Out(e, "arp_reply", "203.0.113.100 is-at rvsd's MAC")], {})]

    # 8. Junk, each dropped and counted; then valid traffic still flows.
    c = new("junk, no service, other MACs, malformed: dropped and counted", client_ip(80))
    C = client_ip(80)
    drops = {}

    def junk(what, frame, reason):
        c.add(what, frame)
        drops[reason] = drops.get(reason, 0) + 1

    def syn_to(dst=web.vip, dport=80, **kw):
        return from_client(C, 40080, dst, dport, "S", ident=1000, **kw)

    junk("SYN to an address that is no VIP", syn_to(dst="203.0.113.200"), "no_service")
    junk("UDP through rvsd to another client (not a VIP)", udp_from_client(C, 53, client_ip(81), 53, b"x"), "no_service")
    junk("echo request to an address that is neither ours nor a VIP", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst="203.0.113.200") / ICMP(type=8), "no_service")
    junk("SYN to a VIP on a port with no service", syn_to(dport=81), "no_service")
    junk("UDP to a TCP-only VIP", udp_from_client(C, 53, dr.vip, 80, b"x"), "no_service")
    junk("GRE to a VIP", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=web.vip) / GRE() / Raw(b"gre"), "unsupported_protocol")
    junk("echo reply to a VIP", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=web.vip) / ICMP(type=0, id=1, seq=1), "unsupported_protocol")
    junk("ACK to a VIP without a connection", from_client(C, 40081, web.vip, 80, "A", seq=1, ack=1), "no_connection")
    junk("FIN to a VIP without a connection", from_client(C, 40082, web.vip, 80, "FA", seq=1, ack=1), "no_connection")
    junk("SYN-ACK from a real server without a connection", from_server(RS11_MAC, RS11_IP, 8080, C, 40083, "SA"), "no_connection")
    junk("UDP from a real server without a connection", udp_from_server(RS11_MAC, RS11_IP, 5353, C, 5000, b"late"), "no_connection")
    stray = bytes(IP(src=C, dst=RS12_IP, ttl=63) / TCP(sport=40084, dport=8080, flags="S"))
    junk("frag needed quoting a connection rvsd never saw", Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=C) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(stray), "no_connection")
    bad = bytearray(bytes(Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=C) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(stray)))
    bad[14 + 20 + 2] ^= 0x5A
    junk("frag needed with a wrong ICMP checksum", bytes(bad), "bad_checksum")
    junk("SYN to a VIP, unicast to another MAC", bytes(Ether(dst=OTHER_MAC, src=ROUTER_MAC) / syn_to()[IP]), "other_mac")
    junk("SYN to a VIP from a multicast source MAC", Ether(dst=OUR_MAC, src="01:00:5e:00:00:01") / syn_to()[IP], "malformed")
    junk("IPv6 SYN", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IPv6(src="2001:db8::1", dst="2001:db8::100") / TCP(dport=80, flags="S"), "ipv6_no_service")
    good = bytes(syn_to())
    junk("a 10-byte frame", good[:10], "truncated")
    junk("IPv4 header cut at 16 bytes", good[: 14 + 16], "truncated")
    junk("TCP header cut at 12 bytes", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=web.vip, proto=6) / Raw(bytes(TCP(sport=40085, dport=80, flags="S"))[:12])), "truncated")
    junk("UDP header cut at 4 bytes", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=dns.vip, proto=17) / Raw(b"\x13\x88\x00\x35")), "truncated")
    junk("IPv4 total length beyond the frame", syn_to(len=400), "truncated")
    junk("IPv4 total length shorter than the header", syn_to(len=16), "malformed")
    b = bytearray(good)
    b[14] = 0x43
    junk("IPv4 with IHL 3", bytes(b), "malformed")
    b = bytearray(good)
    b[14] = 0x65
    junk("version 6 in an IPv4 header", bytes(b), "malformed")
    b = bytearray(good)
    b[14 + 10] ^= 0xFF
    junk("SYN to a VIP with a wrong IPv4 header checksum", bytes(b), "bad_checksum")
    junk("UDP length beyond the IP payload", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=dns.vip) / UDP(sport=5000, dport=53, len=200) / Raw(b"short")), "truncated")
    junk("UDP length below its header", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=dns.vip) / UDP(sport=5000, dport=53, len=4) / Raw(b"short")), "malformed")
    junk("TCP data offset 4 (below 5)", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=web.vip) / TCP(sport=40086, dport=80, flags="S", dataofs=4)), "malformed")
    junk("TCP data offset 15 past the segment", bytes(Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=web.vip) / TCP(sport=40087, dport=80, flags="S", dataofs=15)), "truncated")
    junk("first fragment of an echo request to rvsd's own address", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=OUTSIDE_IP, flags="MF") / ICMP(type=8) / Raw(b"F" * 32), "fragment")
    junk("later fragment to rvsd's own address", Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=OUTSIDE_IP, proto=17, frag=10) / Raw(b"F" * 24), "fragment")
    c.alts = [Alt("", [], {})]
    c.drops = drops

    c = new("valid traffic after the junk still flows", client_ip(90))
    C = client_ip(90)
    outs = []
    p = c.add("client datagram", udp_from_client(C, 9000, dns.vip, dns.port, b"still here", ident=1100))
    outs.append(nat_in(p, RS11_IP, 5353))
    p = c.add("client SYN", from_client(C, 40090, one.vip, one.port, "S", seq=9, ident=1101, options=syn_options(2)))
    outs.append(nat_in(p, RS12_IP, 8080))
    c.alts = [Alt("", outs, {rs_key("dns", RS11_IP, 5353): 1, rs_key("one", RS12_IP, 8080): 1})]
    c.conns_created = 2

    # 9. wrr 3:1: 40 SYNs, exactly 30/10, in the cycle A A A B from any start.
    c = new("wrr 3:1: 40 SYNs from distinct ports split exactly 30/10, interleaved as IPVS's cycle A A A B", client_ip(100))
    C = client_ip(100)
    syns = [c.add(f"SYN from port {41000 + i}", from_client(C, 41000 + i, wrr.vip, wrr.port, "S", seq=i, ident=1200 + i)) for i in range(40)]
    cycle = "AAAB"
    for start in range(4):
        seq = [cycle[(start + i) % 4] for i in range(40)]
        outs = [nat_in(s, RS11_IP if x == "A" else RS12_IP, 8080) for s, x in zip(syns, seq)]
        c.alts.append(Alt("cycle " + "".join(seq[:4]) + "...", outs, {rs_key("wrr", RS11_IP, 8080): 30, rs_key("wrr", RS12_IP, 8080): 10}))
    c.conns_created = 40

    # 10. Stickiness: sh and persistence, 16 connections from one client.
    for svc, n in [(sh, 110), (persist, 120)]:
        what = "sh (source hash)" if svc.scheduler == "sh" else f"rr with persistence {svc.persistence_s} s"
        c = new(f"{what}: 16 connections from one client all go to the same real server", client_ip(n))
        C = client_ip(n)
        syns = [c.add(f"SYN from port {42000 + i}", from_client(C, 42000 + i, svc.vip, svc.port, "S", seq=i, ident=1300 + i)) for i in range(16)]
        for rip in (RS11_IP, RS12_IP):
            c.alts.append(Alt(f"all to {rip}", [nat_in(s, rip, 8080) for s in syns], {rs_key(svc.name, rip, 8080): 16}))
        c.conns_created = 16
        c.order = "multiset"  # independent connections: their order is not the point

    # 11. IPv4 fragments of known connections, forwarded without
    #     reassembly: the first fragment (with the ports) decides, later
    #     ones follow it with only their IP header rewritten (NAT) or
    #     untouched (DR); a later fragment arriving first waits for it.
    #     The expected fragments are scapy's cut of the datagram rvsd must
    #     effectively send, so the UDP/TCP checksum (in the first
    #     fragment) is checked over the whole datagram.
    def cut(p, size):
        return fragment(p, fragsize=size)

    def nat_in_frags(p, rip, rport, size):
        whole = nat_in(p, rip, rport)
        return [Out(f, "forwarded", f"fragment {i} of {whole.what}") for i, f in enumerate(cut(whole.frame, size))]

    def dr_frag(f, rip):
        e = f.copy()
        e[Ether].dst = NEXT_HOP_MAC[rip]
        e[Ether].src = OUR_MAC
        return Out(e, "forwarded", f"DR fragment at offset {f[IP].frag * 8} to {rip}'s MAC")

    def nat_out_frags(p, vip, vport, size):
        whole = nat_out(p, vip, vport)
        return [Out(f, "forwarded", f"fragment {i} of {whole.what}") for i, f in enumerate(cut(whole.frame, size))]

    c = new("fragments in order: a 2500-byte UDP query to a NAT service in three fragments, its answer in three back", client_ip(130))
    C, V, VP, R, RP = client_ip(130), dns.vip, dns.port, RS11_IP, 5353
    q = udp_from_client(C, 7000, V, VP, bytes(rnd.getrandbits(8) for _ in range(2500)), ident=1400)
    for i, f in enumerate(cut(q, 1000)):
        c.add(f"query fragment {i} (offset {f[IP].frag * 8})", f)
    outs = nat_in_frags(q, R, RP, 1000)
    a = udp_from_server(RS11_MAC, R, RP, C, 7000, bytes(rnd.getrandbits(8) for _ in range(2200)), ident=1500)
    for i, f in enumerate(cut(a, 1000)):
        c.add(f"answer fragment {i} (offset {f[IP].frag * 8})", f)
    outs += nat_out_frags(a, V, VP, 1000)
    c.alts = [Alt("", outs, {rs_key("dns", R, RP): 1})]
    c.conns_created = 1
    c.frags_forwarded = 4

    c = new("fragments out of order: the last fragment of a UDP query first waits for the first, then the middle one follows", client_ip(131))
    C = client_ip(131)
    q = udp_from_client(C, 7001, V, VP, bytes(rnd.getrandbits(8) for _ in range(2500)), ident=1401)
    f0, f1, f2 = cut(q, 1000)
    c.add("query fragment 2 (the last) first", f2)
    c.add("query fragment 0", f0)
    c.add("query fragment 1", f1)
    e0, e1, e2 = nat_in_frags(q, R, RP, 1000)
    c.alts = [Alt("", [e0, e2, e1], {rs_key("dns", R, RP): 1})]
    c.conns_created = 1
    c.frags_forwarded = 2
    c.frags_queued = 1

    c = new("DR fragments: a TCP segment in three fragments in order, another in reverse order, all untouched to the same real server", client_ip(132))
    C, CP, V, VP = client_ip(132), 40132, dr.vip, dr.port
    outs = []
    p = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=100, ident=1600, options=syn_options(3)))
    outs.append(dr_in(p, RS11_IP))
    seg = from_client(C, CP, V, VP, "PA", seq=101, ack=1, payload=bytes(rnd.getrandbits(8) for _ in range(2000)), ident=1601, ipflags=0)
    for i, f in enumerate(cut(seg, 800)):
        c.add(f"data fragment {i}", f)
        outs.append(dr_frag(f, RS11_IP))
    seg = from_client(C, CP, V, VP, "PA", seq=2101, ack=1, payload=bytes(rnd.getrandbits(8) for _ in range(2000)), ident=1602, ipflags=0)
    g0, g1, g2 = cut(seg, 800)
    c.add("second segment: fragment 2 first", g2)
    c.add("second segment: fragment 1", g1)
    c.add("second segment: fragment 0", g0)
    outs += [dr_frag(g0, RS11_IP), dr_frag(g2, RS11_IP), dr_frag(g1, RS11_IP)]
    c.alts = [Alt("", outs, {rs_key("dr", RS11_IP, 80): 1})]
    c.conns_created = 1
    c.frags_forwarded = 4
    c.frags_queued = 2

    # Last: it leaves the worker's fragment queue full for two seconds.
    c = new("fragment flood: 100 later fragments with random identifications and no first fragment, held in a bounded queue", client_ip(140))
    C = client_ip(140)
    for i in range(100):
        f = Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=C, dst=dns.vip, proto=17, id=rnd.getrandbits(16), frag=rnd.randrange(1, 8000)) / Raw(bytes(rnd.getrandbits(8) for _ in range(64)))
        c.add(f"later fragment {i} (id {f[IP].id})", f)
    c.alts = [Alt("", [], {})]
    c.frags_queued = FRAGMENT_QUEUE
    c.drops = {"fragment_queue_full": 100 - FRAGMENT_QUEUE}
    # Dropped when they have waited two seconds, if rvsd still runs then.
    c.drops_at_most = {"fragment_unmatched": FRAGMENT_QUEUE}

    return cases


# Later fragments one worker holds waiting for their first (lb::frag).
FRAGMENT_QUEUE = 64


def real_server_index():
    """(service, "ip:port") -> (service index, real server index) in config order."""
    return real_server_index_of(SERVICES)
