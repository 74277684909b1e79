"""What the packet-test tables (lb_cases.py, fullnat_cases.py,
fullnat6_cases.py, nat64_cases.py) share: endpoints as rvsd's TOML writes
them, the routes-and-neighbours part of the config, the FullNAT services
with one local address each and their config, the index of real servers
the judge counts connections by, and the IPv4 quotes an ICMP error about a
forwarded packet carries. Built with scapy only, never with rvs's parser.
"""

from dataclasses import dataclass

from scapy.all import IP, TCP, IPv6


def endpoint(ip: str, port: int) -> str:
    """`ip:port`, the address in brackets when it is IPv6."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def network_config(routes, neighbors, interface) -> list:
    """The `[[route]]` and `[[neighbor]]` tables, as TOML lines."""
    out = []
    for prefix, via in routes:
        out += ["[[route]]", f'prefix = "{prefix}"', f'via = "{via}"', f'interface = "{interface}"', ""]
    for ip, mac in neighbors:
        out += ["[[neighbor]]", f'address = "{ip}"', f'mac = "{mac}"', f'interface = "{interface}"', ""]
    return out


def real_servers_config(real_servers) -> list:
    """A virtual server's `[[virtual_server.real_server]]` tables."""
    out = []
    for ip, port, weight in real_servers:
        out += ["  [[virtual_server.real_server]]", f'  address = "{endpoint(ip, port)}"', f"  weight = {weight}", ""]
    return out


def with_client_address(config: str, modes: dict) -> str:
    """`config` with `client_address = "MODE"` added to each virtual
    server named in `modes` (name -> mode)."""
    for name, mode in modes.items():
        config = config.replace(f'name = "{name}"\n', f'name = "{name}"\nclient_address = "{mode}"\n')
    return config


def real_server_index_of(services):
    """(service, "ip:port") -> (service index, real server index) in config order."""
    idx = {}
    for i, s in enumerate(services):
        for j, (ip, port, _w) in enumerate(s.real_servers):
            idx[(s.name, endpoint(ip, port))] = (i, j)
    return idx


def vips_of(services) -> list:
    """The services' VIPs, each once, in config order."""
    vips = []
    for s in services:
        if s.vip not in vips:
            vips.append(s.vip)
    return vips


@dataclass
class FullNatService:
    """A FullNAT virtual server with one local address (round robin, no
    health check)."""

    name: str
    vip: str
    port: int
    protocol: str
    real_servers: list  # (address, port, weight)
    local: str  # its one local address
    port_range: tuple = None  # local_port_range, None for the default


def fullnat_config(routes, neighbors, interface, services) -> str:
    """Routes, neighbours and FullNAT virtual servers, in rvsd's TOML."""
    out = network_config(routes, neighbors, interface)
    for s in services:
        out += [
            "[[virtual_server]]",
            f'name = "{s.name}"',
            f'address = "{endpoint(s.vip, s.port)}"',
            f'protocol = "{s.protocol}"',
            'scheduler = "rr"',
            'forward = "fullnat"',
            f'local_addresses = ["{s.local}"]',
        ]
        if s.port_range:
            out.append(f"local_port_range = [{s.port_range[0]}, {s.port_range[1]}]")
        out += ["", "  [virtual_server.health_check]", '  type = "none"', ""]
        out += real_servers_config(s.real_servers)
    return "\n".join(out)


def forwarded_ip(p):
    """The IPv4 packet of frame `p` as rvsd forwards it unchanged but for
    the TTL: what an ICMP error about it quotes."""
    back = p[IP].copy()
    back.ttl -= 1
    back.chksum = None
    return back


def forwarded_quote8(p) -> bytes:
    """Frame `p`'s IPv4 header (TTL one less) and its TCP header's first 8
    bytes: an ICMP error's quote of it as forwarded, cut as RFC 792 asks."""
    q = IP(bytes(p[IP])[:20])
    q.ttl -= 1
    q.chksum = None
    return bytes(q) + bytes(p[TCP])[:8]


def forwarded_ipv6(p):
    """The IPv6 packet of frame `p` as rvsd forwards it unchanged but for
    the hop limit (its TCP checksum left for scapy to compute): what an
    ICMPv6 error about it quotes."""
    back = p[IPv6].copy()
    back.hlim -= 1
    back[TCP].chksum = None
    return back
