"""The table of the FullNAT packet test (tests/pcap_fullnat.rs), judged by
lb_judge.py (run with LB_CASES=fullnat_cases): the same single-port
appliance and frame makers as lb_cases.py, with FullNAT services whose
local addresses (LIPs) sit on the inside subnet. Built with scapy only,
never with rvs's parser.

    rvsd 02:00:00:00:00:01, 203.0.113.2/24 (outside) and 10.1.0.1/24 (inside)
    router 203.0.113.1 (clients 198.51.100.0/24), rs11 10.1.0.11,
    rs12 10.1.0.12, gw_in 10.1.0.254 (route 10.2.0.0/16: far servers)
    local addresses 10.1.0.1NN, one per case: the case of client
    198.51.100.NN

A frame to or from a real server carries no client address, only the
case's LIP: `frame_key` maps the LIP back to the case's client, so the
judge attributes it. A connection's local port is the first of its LIP's
range (1024 by default; one worker, a fresh pool, ports handed out in
order).
"""

from scapy.all import ARP, ICMP, IP, TCP, Ether, Raw

import lb_cases
from cases_common import FullNatService, forwarded_ip, forwarded_quote8, fullnat_config, real_server_index_of
from lb_cases import (  # noqa: F401  (re-exported for lb_judge)
    ADDRESSES,
    FAR_RS_IP,
    GW_IN_IP,
    GW_IN_MAC,
    INTERFACE,
    NEIGHBORS,
    NEXT_HOP_MAC,
    OUR_MAC,
    ROUTER_IP,
    ROUTER_MAC,
    ROUTES,
    RS11_IP,
    RS11_MAC,
    RS12_IP,
    RS12_MAC,
    Alt,
    Case,
    Out,
    _fresh,
    client_ip,
    flags_of,
    from_client,
    from_server,
    l4,
    rs_key,
    syn_options,
    udp_from_client,
    udp_from_server,
)

FIRST_PORT = 1024  # the default local_port_range's first port


Service = FullNatService


def lip(n: int) -> str:
    """The local address of the case of client 198.51.100.n."""
    return f"10.1.0.{100 + n}"


SERVICES = [
    Service("fweb", "203.0.113.120", 80, "tcp", [(RS11_IP, 8080, 1)], lip(10)),
    Service("fdns", "203.0.113.120", 53, "udp", [(RS11_IP, 5353, 1)], lip(20)),
    Service("ffar", "203.0.113.121", 80, "tcp", [(FAR_RS_IP, 8080, 1)], lip(30)),
    Service("ftiny", "203.0.113.122", 80, "tcp", [(RS12_IP, 8080, 1)], lip(40), (2000, 2000)),
    Service("fstray", "203.0.113.123", 80, "tcp", [(RS12_IP, 8080, 1)], lip(50)),
]
SVC = {s.name: s for s in SERVICES}
CLIENT_OF_LIP = {s.local: client_ip(int(s.local.split(".")[3]) - 100) for s in SERVICES}


def config_fragment(services=None) -> str:
    """Routes, neighbours and `services` (SERVICES when None), in rvsd's TOML."""
    return fullnat_config(ROUTES, NEIGHBORS, INTERFACE, SERVICES if services is None else services)


def real_server_index():
    return real_server_index_of(SERVICES)


def frame_key(raw):
    """The case a frame belongs to: "arp", or the client address it
    concerns, directly or through the case's local address."""
    try:
        p = Ether(raw)
    except Exception:  # noqa: BLE001
        return None
    if ARP in p:
        return "arp"
    layer = p
    while layer is not None and layer.__class__.__name__ != "NoPayload":
        if "src" in layer.fields and "dst" in layer.fields and layer.__class__.__name__ in ("IP", "IPerror"):
            for a in (layer.src, layer.dst):
                if a.startswith("198.51.100."):
                    return a
                if a in CLIENT_OF_LIP:
                    return CLIENT_OF_LIP[a]
        layer = layer.payload
    return None


# ---------------------------------------------------------- expectations


def fnat_in(p, local, lport, rip, rport):
    """What rvsd sends for client packet `p`: LIP:LPORT -> RIP:RPORT."""
    e = _fresh(p)
    e[Ether].dst = NEXT_HOP_MAC[rip]
    e[Ether].src = OUR_MAC
    e[IP].src, e[IP].dst = local, rip
    e[IP].ttl -= 1
    l4(e).sport, l4(e).dport = lport, rport
    return Out(e, "forwarded", f"{local}:{lport} -> {rip}:{rport} {flags_of(p)} (client {p[IP].src}:{l4(p).sport})")


def fnat_out(p, vip, vport, client, cport):
    """What rvsd sends for real server packet `p`: VIP:VPORT -> client."""
    e = _fresh(p)
    e[Ether].dst = ROUTER_MAC
    e[Ether].src = OUR_MAC
    e[IP].src, e[IP].dst = vip, client
    e[IP].ttl -= 1
    l4(e).sport, l4(e).dport = vport, cport
    return Out(e, "forwarded", f"{vip}:{vport} -> {client}:{cport} {flags_of(p)} (from {p[IP].src})")


def reset_to(syn, vip, vport):
    """The reset rvsd answers client SYN `syn` with (src/xmit/rst.rs)."""
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=vip, dst=syn[IP].src, ttl=64, flags="DF", id=0) / TCP(
        sport=vport, dport=syn[TCP].sport, seq=0, ack=syn[TCP].seq + 1, flags="RA", window=0
    )
    return Out(e, "reset", f"RST/ACK to {syn[IP].src}:{syn[TCP].sport}", ("IP.id",))


# ------------------------------------------------------------- the cases


def build_cases():
    cases = []

    def new(name, key, **kw):
        c = Case(name=name, key=key, **kw)
        cases.append(c)
        return c

    fweb, fdns, ffar, ftiny, fstray = (SVC[n] for n in ["fweb", "fdns", "ffar", "ftiny", "fstray"])

    # 1. TCP: handshake, data both ways, teardown, all through one local port.
    c = new("FullNAT TCP: handshake, data both ways, FIN teardown; the real server sees LIP:LPORT", client_ip(10))
    C, CP, V, VP, R, RP, L, LP = client_ip(10), 40010, fweb.vip, fweb.port, RS11_IP, 8080, fweb.local, FIRST_PORT
    outs = []
    syn = c.add("client SYN with options", from_client(C, CP, V, VP, "S", seq=1000, ident=101, options=syn_options(11)))
    outs.append(fnat_in(syn, L, LP, R, RP))
    p = c.add("server SYN-ACK to LIP:LPORT", from_server(RS11_MAC, R, RP, L, LP, "SA", seq=7000, ack=1001, ident=201, options=[("MSS", 1400)]))
    outs.append(fnat_out(p, V, VP, C, CP))
    p = c.add("client ACK", from_client(C, CP, V, VP, "A", seq=1001, ack=7001, ident=102))
    outs.append(fnat_in(p, L, LP, R, RP))
    req = b"GET / HTTP/1.1\r\nHost: fullnat.example\r\n\r\n"
    p = c.add("client request", from_client(C, CP, V, VP, "PA", seq=1001, ack=7001, payload=req, ident=103))
    outs.append(fnat_in(p, L, LP, R, RP))
    body = b"HTTP/1.1 200 OK\r\nContent-Length: 600\r\n\r\n" + bytes(range(256)) * 2 + bytes(88)
    p = c.add("server response", from_server(RS11_MAC, R, RP, L, LP, "PA", seq=7001, ack=1001 + len(req), payload=body, ident=202))
    outs.append(fnat_out(p, V, VP, C, CP))
    cseq, sseq = 1001 + len(req), 7001 + len(body)
    p = c.add("client FIN", from_client(C, CP, V, VP, "FA", seq=cseq, ack=sseq, ident=104))
    outs.append(fnat_in(p, L, LP, R, RP))
    p = c.add("server FIN", from_server(RS11_MAC, R, RP, L, LP, "FA", seq=sseq, ack=cseq + 1, ident=203))
    outs.append(fnat_out(p, V, VP, C, CP))
    p = c.add("client last ACK", from_client(C, CP, V, VP, "A", seq=cseq + 1, ack=sseq + 1, ident=105))
    outs.append(fnat_in(p, L, LP, R, RP))
    c.alts = [Alt("", outs, {rs_key("fweb", R, RP): 1})]
    c.conns_created = 1

    # 2. UDP both ways, two client ports: two local ports, in order.
    c = new("FullNAT UDP: two flows get consecutive local ports; answers go back to each client port", client_ip(20))
    C, V, VP, R, RP, L = client_ip(20), fdns.vip, fdns.port, RS11_IP, 5353, fdns.local
    q = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01"
    outs = []
    p = c.add("query from port 5001", udp_from_client(C, 5001, V, VP, q, ident=301))
    outs.append(fnat_in(p, L, FIRST_PORT, R, RP))
    p = c.add("query from port 5002, checksum 0", udp_from_client(C, 5002, V, VP, q, ident=302, chksum=0))
    outs.append(fnat_in(p, L, FIRST_PORT + 1, R, RP))
    p = c.add("answer to the second local port", udp_from_server(RS11_MAC, R, RP, L, FIRST_PORT + 1, q + b"\xc0\x0c" * 4, ident=401))
    outs.append(fnat_out(p, V, VP, C, 5002))
    p = c.add("answer to the first local port", udp_from_server(RS11_MAC, R, RP, L, FIRST_PORT, q + b"\xc0\x0c" * 4, ident=402))
    outs.append(fnat_out(p, V, VP, C, 5001))
    c.alts = [Alt("", outs, {rs_key("fdns", R, RP): 2})]
    c.conns_created = 2

    # 3. ICMP errors both ways, through a router on the inside.
    c = new("FullNAT ICMP errors: frag needed about LIP->RIP reaches the client from the VIP quoting client->VIP; "
            "port unreachable about VIP->client reaches the RIP from the LIP quoting RIP->LIP", client_ip(30))
    C, CP, V, VP, R, RP, L, LP = client_ip(30), 40030, ffar.vip, ffar.port, FAR_RS_IP, 8080, ffar.local, FIRST_PORT
    outs = []
    syn = c.add("client SYN", from_client(C, CP, V, VP, "S", seq=1, ident=701, options=syn_options(9)))
    fwd = fnat_in(syn, L, LP, R, RP)
    outs.append(fwd)
    err = Ether(dst=OUR_MAC, src=GW_IN_MAC) / IP(src=GW_IN_IP, dst=L, ttl=64, id=702) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(bytes(fwd.frame[IP]))
    c.add("frag needed (MTU 1400) from gw_in to the LIP about the forwarded SYN", err)
    back = forwarded_ip(syn)
    e = Ether(dst=ROUTER_MAC, src=OUR_MAC) / IP(src=V, dst=C, ttl=63, id=702) / ICMP(type=3, code=4, nexthopmtu=1400) / Raw(bytes(back))
    outs.append(Out(e, "icmp_error", "frag needed to the client from the VIP, quoting client -> VIP:80"))
    synack = c.add("server SYN-ACK", from_server(GW_IN_MAC, R, RP, L, LP, "SA", seq=100, ack=2, ident=703, options=[("MSS", 1360)]))
    reply = fnat_out(synack, V, VP, C, CP)
    outs.append(reply)
    quoted = bytes(reply.frame[IP])[:28]
    err = Ether(dst=OUR_MAC, src=ROUTER_MAC) / IP(src=ROUTER_IP, dst=V, ttl=60, id=704) / ICMP(type=3, code=3) / Raw(quoted)
    c.add("port unreachable from the router about the VIP's SYN-ACK (8 bytes quoted)", err)
    qb = forwarded_quote8(synack)  # the reply as the server sent it, cut the same
    e = Ether(dst=GW_IN_MAC, src=OUR_MAC) / IP(src=L, dst=R, ttl=59, id=704) / ICMP(type=3, code=3) / Raw(qb)
    outs.append(Out(e, "icmp_error", "port unreachable to the RIP from the LIP, quoting RIP:8080 -> LIP:LPORT"))
    c.alts = [Alt("", outs, {rs_key("ffar", R, RP): 1})]
    c.conns_created = 1

    # 4. Port exhaustion: a one-port range; the second SYN is reset.
    c = new("FullNAT local ports exhausted: a one-port range; the second client's SYN gets a reset, counted", client_ip(40))
    C, V, VP, R, RP, L = client_ip(40), ftiny.vip, ftiny.port, RS12_IP, 8080, ftiny.local
    outs = []
    syn = c.add("first SYN takes the only port", from_client(C, 40040, V, VP, "S", seq=10, ident=801))
    outs.append(fnat_in(syn, L, 2000, R, RP))
    syn2 = c.add("second SYN finds none", from_client(C, 40041, V, VP, "S", seq=20, ident=802))
    outs.append(reset_to(syn2, V, VP))
    c.alts = [Alt("", outs, {rs_key("ftiny", R, RP): 1})]
    c.conns_created = 1
    c.drops = {"local_ports_exhausted": 1}

    # 5. A reply to a local port no connection holds: dropped.
    c = new("FullNAT: a real server's segment to an unknown local port is dropped (no_connection)", client_ip(50))
    c.add("SYN-ACK to LIP:5999, which no connection holds", from_server(RS12_MAC, RS12_IP, 8080, fstray.local, 5999, "SA", seq=1, ack=1, ident=901))
    c.alts = [Alt("", [], {})]
    c.drops = {"no_connection": 1}

    # 6. ARP for a local address on its connected subnet.
    c = new("ARP for a local address on the connected subnet is answered", "arp")
    L = fweb.local
    c.add(f"who-has {L} from rs11", Ether(dst="ff:ff:ff:ff:ff:ff", src=RS11_MAC) / ARP(op=1, hwsrc=RS11_MAC, psrc=RS11_IP, pdst=L))
    e = Ether(dst=RS11_MAC, src=OUR_MAC) / ARP(op=2, hwsrc=OUR_MAC, psrc=L, hwdst=RS11_MAC, pdst=RS11_IP)
    c.alts = [Alt("", [Out(e, "arp_reply", f"{L} is-at rvsd's MAC")], {})]

    return cases


# Unused by these cases, read by lb_judge for its own table only.
FRAGMENT_QUEUE = lb_cases.FRAGMENT_QUEUE
