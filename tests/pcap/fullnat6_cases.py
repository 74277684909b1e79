"""The table of the FullNAT-over-IPv6 packet test (tests/pcap_fullnat6.rs),
judged by lb_judge.py (run with LB_CASES=fullnat6_cases): lb6_cases.py's
one-port appliance and frame makers, with FullNAT services whose IPv6
local addresses (LIP6s) sit on the inside prefix. Built with scapy only,
never with rvs's parser; the expected frames are scapy packets whose
checksums scapy computes, so the exact byte comparison checks them too.

    rvsd 02:00:00:00:00:01, 2001:db8:1::2/64 (outside), 2001:db8:2::1/64
         (inside), 203.0.113.2/24
    router 2001:db8:1::fe (route ::/0; clients 2001:db8:c::N, one per case)
    rs11 2001:db8:2::11, rs12 2001:db8:2::12, an inside router
         2001:db8:2::fe (sends from rs11's MAC)
    local addresses 2001:db8:2::1NN, one per case: the case of client
         2001:db8:c::NN

A frame to or from a real server carries no client address, only the
case's LIP6: `frame_key` maps it back to the case's client. A
connection's local port is the first of its LIP6's range (1024 by
default; one worker, a fresh pool, ports handed out in order).
"""

import socket

from scapy.all import (
    TCP,
    UDP,
    Ether,
    ICMPv6DestUnreach,
    ICMPv6ND_NA,
    ICMPv6ND_NS,
    ICMPv6NDOptDstLLAddr,
    ICMPv6NDOptSrcLLAddr,
    ICMPv6PacketTooBig,
    IPerror6,
    IPv6,
    Raw,
)
from scapy.pton_ntop import inet_ntop, inet_pton
from scapy.utils6 import in6_getnsma, in6_getnsmac

import lb6_cases
from cases_common import FullNatService, forwarded_ipv6, fullnat_config, real_server_index_of, vips_of
from lb_cases import Alt, Case, Out  # noqa: F401
from lb6_cases import (  # noqa: F401  (re-exported for lb_judge)
    ADDRESSES,
    INSIDE6,
    INSIDE_ROUTER,
    INTERFACE,
    MAC_OF,
    NEIGHBORS,
    OUR_MAC,
    OUTSIDE6,
    ROUTER_IP,
    ROUTER_MAC,
    ROUTES,
    RS11_IP,
    RS11_MAC,
    RS12_IP,
    RS12_MAC,
    announcement,
    client_ip,
    fresh,
    l4,
    tcp6,
    udp6,
    udp_fragments,
)

FIRST_PORT = 1024  # the default local_port_range's first port


Service = FullNatService


def lip(n: int) -> str:
    """The local address of the case of client 2001:db8:c::n."""
    return f"2001:db8:2::{0x100 + n:x}"


SERVICES = [
    Service("fweb6", "2001:db8:1::120", 80, "tcp", [(RS11_IP, 8080, 1)], lip(0x10)),
    Service("fdns6", "2001:db8:1::120", 53, "udp", [(RS11_IP, 5353, 1)], lip(0x20)),
    Service("ficmp6", "2001:db8:1::121", 80, "tcp", [(RS12_IP, 8080, 1)], lip(0x30)),
    Service("ftiny6", "2001:db8:1::122", 80, "tcp", [(RS12_IP, 8080, 1)], lip(0x40), (2000, 2000)),
    Service("fstray6", "2001:db8:1::123", 80, "tcp", [(RS12_IP, 8080, 1)], lip(0x50)),
    Service("ffrag6", "2001:db8:1::124", 53, "udp", [(RS11_IP, 5353, 1)], lip(0x60)),
]
SVC = {s.name: s for s in SERVICES}
CLIENT_OF_LIP = {s.local: client_ip(int(s.local.split(":")[-1], 16) - 0x100) for s in SERVICES}
VIPS = vips_of(SERVICES)


def config_fragment() -> str:
    return fullnat_config(ROUTES, NEIGHBORS, INTERFACE, SERVICES)


def real_server_index():
    return real_server_index_of(SERVICES)


def rs_key(name, ip, port):
    return (name, f"[{ip}]:{port}")


def frame_key(raw):
    """The case of a frame: "nd" for the start's announcements, "ns" for
    an answered solicitation, else the client address (2001:db8:c::/64) it
    concerns, directly or through the case's local address, in its outer
    or quoted (ICMPv6 error) IPv6 header."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    if ICMPv6ND_NA in p:
        return "ns" if p[ICMPv6ND_NA].S else "nd"
    layer = p
    while layer is not None and layer.name != "NoPayload":
        if isinstance(layer, (IPv6, IPerror6)):
            for a in (layer.src, layer.dst):
                if a.startswith("2001:db8:c::"):
                    return a
                if a in CLIENT_OF_LIP:
                    return CLIENT_OF_LIP[a]
        layer = layer.payload
    return None


# ---------------------------------------------------------- expectations


def fnat_in(p, local, lport, rip, rport):
    """What rvsd sends for client packet `p`: [LIP6]:LPORT -> [RIP]:RPORT."""
    e = fresh(p)
    e[Ether].dst, e[Ether].src = MAC_OF[rip], OUR_MAC
    e[IPv6].src, e[IPv6].dst = local, rip
    e[IPv6].hlim -= 1
    l4(e).sport, l4(e).dport = lport, rport
    return Out(e, "forwarded", f"FullNAT6 [{local}]:{lport} -> [{rip}]:{rport} (client {p[IPv6].src})")


def fnat_out(p, vip, vport, client, cport):
    """What rvsd sends for real server packet `p`: [VIP]:VPORT -> client."""
    e = fresh(p)
    e[Ether].dst, e[Ether].src = ROUTER_MAC, OUR_MAC
    e[IPv6].src, e[IPv6].dst = vip, client
    e[IPv6].hlim -= 1
    l4(e).sport, l4(e).dport = vport, cport
    return Out(e, "forwarded", f"FullNAT6 reply [{vip}]:{vport} -> [{client}]:{cport} (from {p[IPv6].src})")


def reset_to(syn, vip, vport):
    """The reset rvsd answers client SYN `syn` with (src/xmit/rst6.rs)."""
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IPv6(src=vip, dst=syn[IPv6].src, hlim=64) / TCP(
        sport=vport, dport=syn[TCP].sport, flags="RA", seq=0, ack=syn[TCP].seq + 1, window=0
    )
    return Out(e, "reset", f"RST+ACK from [{vip}]:{vport}")


# ------------------------------------------------------------- the cases


def build_cases():
    cases = []

    # The start's announcements: own addresses, the VIPs, the local
    # addresses (master; the LIP6s sorted).
    c = Case("announcements of the own addresses, the IPv6 VIPs and the IPv6 local addresses", "nd", order="multiset")
    c.anytime = True
    locals6 = sorted({s.local for s in SERVICES})
    c.alts = [Alt("", [announcement(a) for a in [OUTSIDE6, INSIDE6] + VIPS + locals6], {})]
    cases.append(c)

    fweb, fdns, ficmp, ftiny, fstray, ffrag = (SVC[n] for n in ["fweb6", "fdns6", "ficmp6", "ftiny6", "fstray6", "ffrag6"])

    # 1. TCP both ways through one local port.
    C, CP, V, VP, R, RP, L, LP = client_ip(0x10), 40010, fweb.vip, fweb.port, RS11_IP, 8080, fweb.local, FIRST_PORT
    c = Case("FullNAT6 TCP handshake and data both ways; the real server sees [LIP6]:LPORT", C, conns_created=1)
    outs = []
    p = c.add("client SYN", tcp6(C, CP, V, VP, "S", seq=1000))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add("server SYN-ACK to the LIP6", tcp6(R, RP, L, LP, "SA", seq=7000, ack=1001, src_mac=RS11_MAC))
    outs.append(fnat_out(p, V, VP, C, CP))
    req = b"GET / HTTP/1.1\r\nHost: fullnat6.example\r\n\r\n"
    p = c.add("client request", tcp6(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req))
    outs.append(fnat_in(p, L, LP, R, RP))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 512\r\n\r\n" + bytes(range(256)) * 2
    p = c.add("server response", tcp6(R, RP, L, LP, "PA", seq=7001, ack=1001 + len(req), payload=body, src_mac=RS11_MAC))
    outs.append(fnat_out(p, V, VP, C, CP))
    c.alts = [Alt("", outs, {rs_key("fweb6", R, RP): 1})]
    cases.append(c)

    # 2. UDP both ways, two client ports: two local ports, in order.
    C, V, VP, R, RP, L = client_ip(0x20), fdns.vip, fdns.port, RS11_IP, 5353, fdns.local
    c = Case("FullNAT6 UDP: two flows get consecutive local ports; answers go back to each client port", C, conns_created=2)
    outs = []
    p = c.add("query from port 5001", udp6(C, 5001, V, VP, b"query-one"))
    outs.append(fnat_in(p, L, FIRST_PORT, R, RP))
    p = c.add("query from port 5002", udp6(C, 5002, V, VP, b"query-two"))
    outs.append(fnat_in(p, L, FIRST_PORT + 1, R, RP))
    p = c.add("answer to the second local port", udp6(R, RP, L, FIRST_PORT + 1, b"answer-two", src_mac=RS11_MAC))
    outs.append(fnat_out(p, V, VP, C, 5002))
    p = c.add("answer to the first local port", udp6(R, RP, L, FIRST_PORT, b"answer-one", src_mac=RS11_MAC))
    outs.append(fnat_out(p, V, VP, C, 5001))
    c.alts = [Alt("", outs, {rs_key("fdns6", R, RP): 2})]
    cases.append(c)

    # 3. ICMPv6 errors both ways.
    C, CP, V, VP, R, RP, L, LP = client_ip(0x30), 40030, ficmp.vip, ficmp.port, RS12_IP, 8080, ficmp.local, FIRST_PORT
    c = Case(
        "FullNAT6 ICMPv6: packet too big about LIP6->RIP reaches the client from the VIP quoting client->VIP; "
        "unreachable about VIP->client reaches the RIP from the LIP6 quoting RIP->LIP6",
        C,
        conns_created=1,
    )
    outs = []
    syn = c.add("client SYN with 200 bytes", tcp6(C, CP, V, VP, "S", seq=1, payload=b"x" * 200))
    fwd = fnat_in(syn, L, LP, R, RP)
    outs.append(fwd)
    c.add(
        "packet too big (MTU 1280) from the inside router to the LIP6 about the forwarded SYN",
        Ether(dst=OUR_MAC, src=RS11_MAC) / IPv6(src=INSIDE_ROUTER, dst=L, hlim=64) / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(fwd.frame[IPv6])),
    )
    back = forwarded_ipv6(syn)
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IPv6(src=V, dst=C, hlim=63) / ICMPv6PacketTooBig(mtu=1280) / Raw(bytes(back))
    outs.append(Out(e, "icmp_error", "packet too big to the client from the VIP, quoting client -> VIP:80"))
    synack = c.add("server SYN-ACK", tcp6(R, RP, L, LP, "SA", seq=100, ack=2, src_mac=RS12_MAC))
    reply = fnat_out(synack, V, VP, C, CP)
    outs.append(reply)
    c.add(
        "address unreachable from the outside router about the VIP's SYN-ACK",
        Ether(dst=OUR_MAC, src=ROUTER_MAC) / IPv6(src=ROUTER_IP, dst=V, hlim=60) / ICMPv6DestUnreach(code=3) / Raw(bytes(reply.frame[IPv6])),
    )
    q = synack[IPv6].copy()
    q.hlim -= 1
    e = Ether(dst=RS12_MAC, src=OUR_MAC) / IPv6(src=L, dst=R, hlim=59) / ICMPv6DestUnreach(code=3) / Raw(bytes(q))
    outs.append(Out(e, "icmp_error", "unreachable to the RIP from the LIP6, quoting RIP:8080 -> LIP6:LPORT"))
    c.alts = [Alt("", outs, {rs_key("ficmp6", R, RP): 1})]
    cases.append(c)

    # 4. Port exhaustion: a one-port range; the second SYN is reset.
    C, V, VP, R, RP, L = client_ip(0x40), ftiny.vip, ftiny.port, RS12_IP, 8080, ftiny.local
    c = Case("FullNAT6 local ports exhausted: a one-port range; the second SYN gets an IPv6 reset, counted", C, conns_created=1)
    outs = []
    syn = c.add("first SYN takes the only port", tcp6(C, 40040, V, VP, "S", seq=10))
    outs.append(fnat_in(syn, L, 2000, R, RP))
    syn2 = c.add("second SYN finds none", tcp6(C, 40041, V, VP, "S", seq=20))
    outs.append(reset_to(syn2, V, VP))
    c.alts = [Alt("", outs, {rs_key("ftiny6", R, RP): 1})]
    c.drops = {"local_ports_exhausted": 1}
    cases.append(c)

    # 5. A reply to a local port no connection holds: dropped.
    C = client_ip(0x50)
    c = Case("FullNAT6: a real server's segment to an unknown local port is dropped (no_connection)", C)
    c.add("SYN-ACK to [LIP6]:5999, which no connection holds", tcp6(RS12_IP, 8080, fstray.local, 5999, "SA", seq=1, ack=1, src_mac=RS12_MAC))
    c.alts = [Alt("", [], {})]
    c.drops = {"no_connection": 1}
    cases.append(c)

    # 6. Fragments of a UDP datagram, the last first: the first fragment is
    # decided and rewritten whole, the later ones follow with both
    # addresses rewritten.
    C, V, VP, R, RP, L = client_ip(0x60), ffrag.vip, ffrag.port, RS11_IP, 5353, ffrag.local
    c = Case("FullNAT6 UDP datagram in three fragments, last first", C, conns_created=1)
    payload = bytes((i * 7) % 256 for i in range(1400))
    frags = udp_fragments(C, 5400, V, VP, payload, 0xF6F60001)
    for i in [2, 1, 0]:
        c.add(f"fragment {i}", frags[i])
    want = udp_fragments(L, FIRST_PORT, R, RP, payload, 0xF6F60001, hlim=63, eth=(RS11_MAC, OUR_MAC))
    c.alts = [Alt("", [Out(want[i], "forwarded", f"fragment {i} to rs11 from the LIP6") for i in [0, 2, 1]], {rs_key("ffrag6", R, RP): 1})]
    c.frags_forwarded = 2
    c.frags_queued = 2
    cases.append(c)

    # 7. A solicitation for a local address on its connected prefix.
    L = fweb.local
    c = Case("a neighbour solicitation for an IPv6 local address is answered", "ns")
    group = inet_ntop(socket.AF_INET6, in6_getnsma(inet_pton(socket.AF_INET6, L)))
    ns = Ether(dst=in6_getnsmac(inet_pton(socket.AF_INET6, group)), src=RS11_MAC)
    ns = ns / IPv6(src=RS11_IP, dst=group, hlim=255) / ICMPv6ND_NS(tgt=L) / ICMPv6NDOptSrcLLAddr(lladdr=RS11_MAC)
    c.add(f"who has {L} (from rs11)", ns)
    na = (
        Ether(dst=RS11_MAC, src=OUR_MAC)
        / IPv6(src=L, dst=RS11_IP, hlim=255)
        / ICMPv6ND_NA(tgt=L, R=0, S=1, O=1)
        / ICMPv6NDOptDstLLAddr(lladdr=OUR_MAC)
    )
    c.alts = [Alt("", [Out(na, "nd_advert", f"{L} is at rvsd's MAC")], {})]
    cases.append(c)
    return cases


FRAGMENT_QUEUE = getattr(lb6_cases, "FRAGMENT_QUEUE", None)
EXTRA_DROP_REASONS = lb6_cases.EXTRA_DROP_REASONS
