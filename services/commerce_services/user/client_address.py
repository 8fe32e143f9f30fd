"""The address a sign-in came from, for its per-address limit: the connection's peer, unless
the peer is a trusted proxy (the Ingress controller), then the nearest address in
X-Forwarded-For that is not a trusted proxy. A client can put anything in that header, so only
what trusted proxies appended is believed."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(peer: str | None, forwarded_for: str | None, proxies: Sequence[Network]) -> str:
    address = peer or "unknown"
    if forwarded_for is None or not _trusted(address, proxies):
        return address
    for hop in reversed(forwarded_for.split(",")):
        hop = hop.strip()
        if not hop:
            continue
        address = hop
        if not _trusted(hop, proxies):
            break
    return address[:64]
