"""The table of the IPv4-in-IPv6 TUN packet test (tests/pcap_tun46.rs),
judged by lb_judge.py (run with LB_CASES=tun46_cases): lb6_cases.py's
one-port appliance with an IPv4 virtual server by TUN whose real server
is IPv6. The client's IPv4 packet goes unchanged inside IPv6 (next
header 4) from rvsd's inside IPv6 address to the real server's MAC, the
traffic class the inner TOS, flow label 0; too big once encapsulated
with DF: ICMP fragmentation needed back (MTU 1500 - 40); without DF:
dropped (`too_big`). Built with scapy only, never with rvs's parser.

    rvsd 02:00:00:00:00:01, 2001:db8:1::2/64, 2001:db8:2::1/64 (inside),
         203.0.113.2/24
    router 203.0.113.254 02:00:00:00:00:fe (route 198.51.100.0/24;
           clients 198.51.100.N, one per case)
    rs12 2001:db8:2::12 02:00:00:00:01:0c
"""

from dataclasses import dataclass

from scapy.all import IP, TCP, Ether, ICMPv6ND_NA, IPv6, Raw

from lb_cases import Alt, Case, Out, frag_needed_back, from_client  # noqa: F401
from lb6_cases import (  # noqa: F401  (re-exported for lb_judge)
    ADDRESSES,
    INSIDE6,
    INTERFACE,
    OUR_MAC,
    OUTSIDE6,
    ROUTER_MAC,
    RS12_IP,
    RS12_MAC,
    announcement,
)

ROUTER4 = "203.0.113.254"
NEIGHBORS = [(ROUTER4, ROUTER_MAC), (RS12_IP, RS12_MAC)]
ROUTES = [("198.51.100.0/24", ROUTER4)]
IPV4_IN_IPV6 = 4
PORT_MTU = 1500  # net_pcap's default MTU


@dataclass
class Service:
    name: str
    vip: str
    port: int
    real_servers: list  # (IPv6 address, port, weight)


SERVICES = [Service("tun46", "203.0.113.102", 80, [(RS12_IP, 80, 1)])]
TUN46 = SERVICES[0]


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
            f'address = "{s.vip}:{s.port}"',
            'protocol = "tcp"',
            'scheduler = "rr"',
            'forward = "tun"',
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
    return f"198.51.100.{n}"


def frame_key(raw):
    """The case of a frame: "nd" for the start's announcements, else the
    client address (198.51.100.0/24) in an IPv4 header: the frame's, the
    one inside IPv6 (next header 4) or the one an ICMP error quotes."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    if ICMPv6ND_NA in p:
        return "nd"
    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, IPv6) and layer.nh == IPV4_IN_IPV6:
            layer = IP(bytes(layer.payload))
            continue
        for a in (getattr(layer, "src", ""), getattr(layer, "dst", "")):
            if isinstance(a, str) and a.startswith("198.51.100."):
                return a
        layer = layer.payload
    return None


def tun46_in(p, rip):
    """The client's packet `p` as rvsd tunnels it to `rip`."""
    inner = bytes(p[IP])
    outer = IPv6(src=INSIDE6, dst=rip, hlim=64, nh=IPV4_IN_IPV6, tc=p[IP].tos, fl=0) / Raw(inner)
    return Out(Ether(dst=RS12_MAC, src=OUR_MAC) / outer, "forwarded", f"4in6 to {rip} ({len(inner)} bytes)")


def build_cases():
    cases = []
    v, vp = TUN46.vip, TUN46.port
    rs = {("tun46", f"[{RS12_IP}]:80"): 1}

    # The start's announcements of the own IPv6 addresses (no IPv6 VIP).
    c = Case("announcements of the own IPv6 addresses", "nd", order="multiset")
    c.anytime = True
    c.alts = [Alt("", [announcement(a) for a in [OUTSIDE6, INSIDE6]], {})]
    cases.append(c)

    cl = client_ip(10)
    c = Case("TUN46: SYN and ACK unchanged inside IPv6 (nh 4, tc = TOS) to the IPv6 real server", cl, conns_created=1)
    syn = c.add("SYN, TOS 0x28", from_client(cl, 41000, v, vp, tos=0x28))
    ack = c.add("ACK + data", from_client(cl, 41000, v, vp, "PA", seq=1001, ack=5001, payload=b"GET / HTTP/1.0\r\n\r\n", ident=2))
    c.alts = [Alt("", [tun46_in(syn, RS12_IP), tun46_in(ack, RS12_IP)], rs)]
    cases.append(c)

    cl = client_ip(20)
    c = Case("TUN46: exact fit at 1460, too big with DF -> ICMP 3/4 MTU 1460, too big without DF dropped", cl, conns_created=1)
    inner_mtu = PORT_MTU - 40
    syn = c.add("SYN", from_client(cl, 42000, v, vp))
    fit = c.add(f"data: IP {inner_mtu} bytes, DF", from_client(cl, 42000, v, vp, "A", seq=1001, ack=1, payload=b"f" * (inner_mtu - 40), ident=3))
    assert len(fit[IP]) == inner_mtu
    big = c.add("data: IP 1480 bytes, DF", from_client(cl, 42000, v, vp, "A", seq=1001 + inner_mtu - 40, ack=1, payload=b"b" * 1440, ident=4))
    c.add("data: IP 1480 bytes, no DF", from_client(cl, 42000, v, vp, "A", seq=1001 + inner_mtu - 40, ack=1, payload=b"n" * 1440, ident=5, ipflags=0))
    c.alts = [Alt("", [tun46_in(syn, RS12_IP), tun46_in(fit, RS12_IP), frag_needed_back(big, inner_mtu)], rs)]
    c.drops = {"too_big": 1}
    cases.append(c)
    return cases
