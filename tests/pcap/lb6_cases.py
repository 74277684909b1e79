"""The table of the IPv6 load-balancing packet test (tests/pcap_lb6.rs),
judged by lb_judge.py (run with LB_CASES=lb6_cases): IPv6 NAT (TCP both
ways, UDP both ways, a destination-options header before TCP), DR (MAC
only), TUN (IPv6-in-IPv6), a reset when a service has no server to take a
connection, ICMPv6 packet too big from the inside translated to the
client, malformed IPv6 to a VIP dropped and counted, UDP fragments in
order and out of order, a fragment flood held in the bounded queue. Built with scapy
only, never with rvs's parser; expected frames are scapy packets whose
checksums scapy computes, so the exact byte comparison checks them too.

One rvsd port carries everything:

    rvsd 02:00:00:00:00:01, 2001:db8:1::2/64 (outside), 2001:db8:2::1/64
         (inside), 203.0.113.2/24
    router 2001:db8:1::fe 02:00:00:00:00:fe (route ::/0; clients
           2001:db8:c::N, one per case)
    rs11 2001:db8:2::11 02:00:00:00:01:0b, rs12 2001:db8:2::12 02:00:00:00:01:0c

every neighbour static, so rvsd never solicits. Worker 0 announces its own
IPv6 addresses and the IPv6 VIPs once at start (unsolicited neighbour
advertisements): the "announcements" case holds them, at any place in the
output.
"""

import random
from dataclasses import dataclass

from scapy.all import (
    TCP,
    UDP,
    Ether,
    ICMPv6ND_NA,
    ICMPv6NDOptDstLLAddr,
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrRouting,
    PadN,
    Raw,
    fragment6,
)

from lb_cases import FRAGMENT_QUEUE, Alt, Case, Out  # noqa: F401

OUR_MAC = "02:00:00:00:00:01"
OUTSIDE6 = "2001:db8:1::2"
INSIDE6 = "2001:db8:2::1"
ADDRESSES = [OUTSIDE6 + "/64", INSIDE6 + "/64", "203.0.113.2/24"]
INTERFACE = "test0"

ROUTER_IP, ROUTER_MAC = "2001:db8:1::fe", "02:00:00:00:00:fe"
RS11_IP, RS11_MAC = "2001:db8:2::11", "02:00:00:00:01:0b"
RS12_IP, RS12_MAC = "2001:db8:2::12", "02:00:00:00:01:0c"
INSIDE_ROUTER = "2001:db8:2::fe"
NEIGHBORS = [(ROUTER_IP, ROUTER_MAC), (RS11_IP, RS11_MAC), (RS12_IP, RS12_MAC)]
ROUTES = [("::/0", ROUTER_IP)]
MAC_OF = {RS11_IP: RS11_MAC, RS12_IP: RS12_MAC}
ALL_NODES, ALL_NODES_MAC = "ff02::1", "33:33:00:00:00:01"

# Extra drop reasons this table counts (lb_judge.py checks them too).
EXTRA_DROP_REASONS = ["ipv6_source_route"]


@dataclass
class Service:
    name: str
    vip: str
    port: int
    protocol: str
    forward: str
    real_servers: list  # (address, port, weight)


SERVICES = [
    Service("web6", "2001:db8:1::100", 80, "tcp", "nat", [(RS11_IP, 8080, 1)]),
    Service("dns6", "2001:db8:1::100", 53, "udp", "nat", [(RS11_IP, 5353, 1)]),
    Service("dr6", "2001:db8:1::101", 80, "tcp", "dr", [(RS12_IP, 80, 1)]),
    Service("tun6", "2001:db8:1::102", 80, "tcp", "tun", [(RS12_IP, 80, 1)]),
    Service("none6", "2001:db8:1::104", 80, "tcp", "nat", [(RS12_IP, 8080, 0)]),
]
SVC = {s.name: s for s in SERVICES}
VIPS = []
for _s in SERVICES:
    if _s.vip not in VIPS:
        VIPS.append(_s.vip)


def config_fragment() -> str:
    out = []
    for prefix, via in ROUTES:
        out += ["[[route]]", f'prefix = "{prefix}"', f'via = "{via}"', f'interface = "{INTERFACE}"', ""]
    for ip, mac in NEIGHBORS:
        out += ["[[neighbor]]", f'address = "{ip}"', f'mac = "{mac}"', f'interface = "{INTERFACE}"', ""]
    for s in SERVICES:
        out += [
            "[[virtual_server]]",
            f'name = "{s.name}"',
            f'address = "[{s.vip}]:{s.port}"',
            f'protocol = "{s.protocol}"',
            'scheduler = "rr"',
            f'forward = "{s.forward}"',
            "",
            "  [virtual_server.health_check]",
            '  type = "none"',
            "",
        ]
        for ip, port, weight in s.real_servers:
            out += ["  [[virtual_server.real_server]]", f'  address = "[{ip}]:{port}"', f"  weight = {weight}", ""]
    return "\n".join(out)


def real_server_index():
    idx = {}
    for i, s in enumerate(SERVICES):
        for j, (ip, port, _w) in enumerate(s.real_servers):
            idx[(s.name, f"[{ip}]:{port}")] = (i, j)
    return idx


def client_ip(n: int) -> str:
    return f"2001:db8:c::{n:x}"


def frame_key(raw):
    """The case of a frame: "nd" for the start's announcements, else the
    client address (2001:db8:c::/64) in its outer, inner (6in6) or quoted
    (ICMPv6 error) IPv6 header."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    if ICMPv6ND_NA in p:
        return "nd"
    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, (IPv6, IPerror6)):
            for a in (layer.src, layer.dst):
                if a.startswith("2001:db8:c::"):
                    return a
        layer = layer.payload
    return None


# ---------------------------------------------------------- frame makers


def tcp6(src, sport, dst, dport, flags="S", seq=1000, ack=0, payload=b"", hlim=64, ext=None, src_mac=ROUTER_MAC):
    ip = IPv6(src=src, dst=dst, hlim=hlim)
    if ext is not None:
        ip = ip / ext
    p = Ether(dst=OUR_MAC, src=src_mac) / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240)
    if payload:
        p = p / Raw(payload)
    return p


def udp6(src, sport, dst, dport, payload, hlim=64, src_mac=ROUTER_MAC):
    return Ether(dst=OUR_MAC, src=src_mac) / IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=sport, dport=dport) / Raw(payload)


def l4(p):
    return p[TCP] if TCP in p else p[UDP]


def fresh(p):
    e = p.copy()
    l4(e).chksum = None
    return e


def nat_in(p, rip, rport):
    e = fresh(p)
    e[Ether].dst, e[Ether].src = MAC_OF[rip], OUR_MAC
    e[IPv6].dst = rip
    e[IPv6].hlim -= 1
    l4(e).dport = rport
    return Out(e, "forwarded", f"NAT6 {p[IPv6].src} -> [{rip}]:{rport}")


def nat_out(p, vip, vport):
    e = fresh(p)
    e[Ether].dst, e[Ether].src = ROUTER_MAC, OUR_MAC
    e[IPv6].src = vip
    e[IPv6].hlim -= 1
    l4(e).sport = vport
    return Out(e, "forwarded", f"NAT6 reply [{vip}]:{vport} -> {p[IPv6].dst}")


def dr_in(p, rip):
    e = p.copy()
    e[Ether].dst, e[Ether].src = MAC_OF[rip], OUR_MAC
    e[IPv6].hlim -= 1
    return Out(e, "forwarded", f"DR6 {p[IPv6].src} -> {p[IPv6].dst} to {rip}'s MAC")


def tun_in(p, rip):
    inner = p[IPv6].copy()
    inner.hlim -= 1
    raw = bytes(inner)
    outer = IPv6(src=INSIDE6, dst=rip, hlim=64, nh=41, tc=p[IPv6].tc, fl=p[IPv6].fl) / Raw(raw)
    return Out(Ether(dst=MAC_OF[rip], src=OUR_MAC) / outer, "forwarded", f"6in6 to {rip} ({len(raw)} bytes)")


def announcement(target):
    e = (
        Ether(dst=ALL_NODES_MAC, src=OUR_MAC)
        / IPv6(src=target, dst=ALL_NODES, hlim=255)
        / ICMPv6ND_NA(tgt=target, R=0, S=0, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=OUR_MAC)
    )
    return Out(e, "announcement", f"unsolicited NA of {target}")


# ------------------------------------------------------------- the cases


def build_cases():
    cases = []

    # The start's announcements: own addresses, then the VIPs (master).
    c = Case("announcements of the own addresses and the IPv6 VIPs", "nd", order="multiset")
    c.anytime = True
    c.alts = [Alt("", [announcement(a) for a in [OUTSIDE6, INSIDE6] + VIPS], {})]
    cases.append(c)

    # NAT TCP both ways.
    web = SVC["web6"]
    cl = client_ip(0x10)
    c = Case("NAT6 TCP handshake and data both ways", cl, conns_created=1)
    syn = c.add("SYN", tcp6(cl, 40000, web.vip, 80))
    synack = c.add("SYN-ACK", tcp6(RS11_IP, 8080, cl, 40000, "SA", seq=5000, ack=1001, src_mac=RS11_MAC))
    ack = c.add("ACK + data", tcp6(cl, 40000, web.vip, 80, "PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.0\r\n\r\n"))
    data = c.add("reply data", tcp6(RS11_IP, 8080, cl, 40000, "PA", seq=5001, ack=1019, payload=b"HTTP/1.0 200 OK\r\n\r\nsix", src_mac=RS11_MAC))
    c.alts = [Alt("", [nat_in(syn, RS11_IP, 8080), nat_out(synack, web.vip, 80), nat_in(ack, RS11_IP, 8080), nat_out(data, web.vip, 80)], {("web6", f"[{RS11_IP}]:8080"): 1})]
    cases.append(c)

    # NAT UDP both ways.
    dns = SVC["dns6"]
    cl = client_ip(0x20)
    c = Case("NAT6 UDP both ways", cl, conns_created=1)
    q = c.add("query", udp6(cl, 5300, dns.vip, 53, b"query-six"))
    r = c.add("answer", udp6(RS11_IP, 5353, cl, 5300, b"answer-six", src_mac=RS11_MAC))
    c.alts = [Alt("", [nat_in(q, RS11_IP, 5353), nat_out(r, dns.vip, 53)], {("dns6", f"[{RS11_IP}]:5353"): 1})]
    cases.append(c)

    # A destination-options header before TCP: kept, TCP rewritten right.
    cl = client_ip(0x30)
    c = Case("NAT6 SYN behind a destination-options header", cl, conns_created=1)
    opts = IPv6ExtHdrDestOpt(options=[PadN(optdata=b"\0\0\0\0")])
    syn = c.add("SYN with dest opts", tcp6(cl, 40001, web.vip, 80, ext=opts))
    c.alts = [Alt("", [nat_in(syn, RS11_IP, 8080)], {("web6", f"[{RS11_IP}]:8080"): 1})]
    cases.append(c)

    # DR: only the MACs (and the hop limit).
    dr = SVC["dr6"]
    cl = client_ip(0x40)
    c = Case("DR6 SYN and ACK: the real server's MAC, nothing else", cl, conns_created=1)
    syn = c.add("SYN", tcp6(cl, 40002, dr.vip, 80))
    ack = c.add("ACK", tcp6(cl, 40002, dr.vip, 80, "A", seq=1001, ack=7001))
    c.alts = [Alt("", [dr_in(syn, RS12_IP), dr_in(ack, RS12_IP)], {("dr6", f"[{RS12_IP}]:80"): 1})]
    cases.append(c)

    # TUN: IPv6-in-IPv6 from the inside address.
    tun = SVC["tun6"]
    cl = client_ip(0x50)
    c = Case("TUN6 SYN in IPv6-in-IPv6", cl, conns_created=1)
    syn = c.add("SYN", tcp6(cl, 40003, tun.vip, 80))
    c.alts = [Alt("", [tun_in(syn, RS12_IP)], {("tun6", f"[{RS12_IP}]:80"): 1})]
    cases.append(c)

    # Packet too big from a router on the inside, about a NAT'd packet.
    cl = client_ip(0x60)
    c = Case("ICMPv6 packet too big from the inside reaches the client from the VIP", cl, conns_created=1)
    syn = c.add("SYN", tcp6(cl, 40004, web.vip, 80, payload=b"x" * 200))
    sent = nat_in(syn, RS11_IP, 8080)
    quoted = bytes(sent.frame[IPv6])
    err = c.add(
        "packet too big quoting the forwarded SYN",
        Ether(dst=OUR_MAC, src=RS11_MAC) / IPv6(src=INSIDE_ROUTER, dst=cl, hlim=64) / ICMPv6PacketTooBig(mtu=1280) / Raw(quoted),
    )
    back = syn[IPv6].copy()
    back.hlim -= 1
    back[TCP].chksum = None
    translated = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IPv6(src=web.vip, dst=cl, hlim=63) / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(back))
    c.alts = [Alt("", [sent, Out(translated, "icmp_error", "packet too big as from the VIP")], {("web6", f"[{RS11_IP}]:8080"): 1})]
    del err
    cases.append(c)

    # No server can take it: a reset from the VIP.
    none = SVC["none6"]
    cl = client_ip(0x70)
    c = Case("a SYN to a service whose only server has weight 0 gets a reset", cl)
    syn = c.add("SYN", tcp6(cl, 40005, none.vip, 80, seq=4242))
    rst = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IPv6(src=none.vip, dst=cl, hlim=64) / TCP(sport=80, dport=40005, flags="RA", seq=0, ack=4243, window=0)
    c.alts = [Alt("", [Out(rst, "reset", "RST+ACK from the VIP")], {})]
    c.drops = {}
    cases.append(c)

    # Malformed IPv6 to a VIP: dropped and counted, nothing sent.
    cl = client_ip(0x80)
    c = Case("malformed IPv6 to a VIP is dropped and counted", cl)
    cut = bytearray(bytes(tcp6(cl, 40006, web.vip, 80)))
    # The TCP header cut to 12 bytes, the payload length saying so.
    cut = cut[: 14 + 40 + 12]
    cut[14 + 4 : 14 + 6] = (12).to_bytes(2, "big")
    c.add("TCP header cut short", bytes(cut))
    longer = bytearray(bytes(tcp6(cl, 40007, web.vip, 80)))
    longer[14 + 4 : 14 + 6] = (400).to_bytes(2, "big")
    c.add("payload length beyond the frame", bytes(longer))
    c.add(
        "a live routing header",
        Ether(dst=OUR_MAC, src=ROUTER_MAC) / IPv6(src=cl, dst=web.vip) / IPv6ExtHdrRouting(addresses=["2001:db8:99::1"], segleft=1) / TCP(sport=40008, dport=80),
    )
    c.alts = [Alt("", [], {})]
    c.drops = {"truncated": 2, "ipv6_source_route": 1}
    cases.append(c)

    # Fragments of a UDP datagram to the NAT service, in order and out of
    # order: the first is decided and rewritten (its UDP checksum covers
    # the whole datagram), the later ones follow with the destination
    # address alone rewritten, or wait for the first.
    for n, (label, order) in enumerate([("in order", [0, 1, 2]), ("last first", [2, 1, 0])]):
        cl = client_ip(0x90 + 0x10 * n)
        c = Case(f"NAT6 UDP datagram in three fragments, {label}", cl, conns_created=1)
        payload = bytes((i * 7 + n) % 256 for i in range(1400))
        ident = 0xC0DE0000 + n
        frags = udp_fragments(cl, 5400 + n, dns.vip, 53, payload, ident)
        for i in order:
            c.add(f"fragment {i}", frags[i])
        want = udp_fragments(cl, 5400 + n, RS11_IP, 5353, payload, ident, hlim=63, eth=(RS11_MAC, OUR_MAC))
        outs = [Out(want[i], "forwarded", f"fragment {i} to rs11") for i in ([0, 1, 2] if order[0] == 0 else [0, 2, 1])]
        c.alts = [Alt("", outs, {("dns6", f"[{RS11_IP}]:5353"): 1})]
        c.frags_forwarded = 2
        c.frags_queued = 0 if order[0] == 0 else 2
        cases.append(c)

    # Last: it leaves the worker's fragment queue full. Later fragments
    # with random 32-bit identifications and no first fragment: the
    # bounded queue holds FRAGMENT_QUEUE of them, the rest are dropped.
    rnd = random.Random(20261203)
    cl = client_ip(0xB0)
    c = Case("IPv6 fragment flood: 100 later fragments and no first, held in a bounded queue", cl)
    for i in range(100):
        f = Ether(dst=OUR_MAC, src=ROUTER_MAC) / IPv6(src=cl, dst=dns.vip) / IPv6ExtHdrFragment(nh=17, offset=rnd.randrange(1, 8000), m=rnd.getrandbits(1), id=rnd.getrandbits(32)) / Raw(bytes(rnd.getrandbits(8) for _ in range(64)))
        c.add(f"later fragment {i}", f)
    c.alts = [Alt("", [], {})]
    c.frags_queued = FRAGMENT_QUEUE
    c.drops = {"fragment_queue_full": 100 - FRAGMENT_QUEUE}
    # Dropped when they have waited two seconds, if rvsd still runs then.
    c.drops_at_most = {"fragment_unmatched": FRAGMENT_QUEUE}
    cases.append(c)
    return cases


def udp_fragments(src, sport, dst, dport, payload, ident, hlim=64, eth=(OUR_MAC, ROUTER_MAC)):
    """The UDP datagram cut by scapy into three fragments (1400 bytes of
    payload, 600-byte fragments), as Ethernet frames frozen to bytes."""
    p = IPv6(src=src, dst=dst, hlim=hlim) / IPv6ExtHdrFragment(id=ident) / UDP(sport=sport, dport=dport) / Raw(payload)
    pieces = fragment6(p, 600)
    assert len(pieces) == 3, len(pieces)
    return [Ether(bytes(Ether(dst=eth[0], src=eth[1]) / f)) for f in pieces]
