"""Keep webhooks pointed at the public internet (server-side request forgery guard).

A platform's webhook URL makes our worker send POST requests; without a guard a URL such as
`http://169.254.169.254/` or `http://10.0.0.5:5432/` would turn the worker into a probe of
the lender's own network. Registration refuses literal private addresses and `localhost`;
every delivery resolves the host and refuses it when any address is not public (DNS can
change after registration). Local development and tests opt out with
`DUECOURSE_WEBHOOK_ALLOW_PRIVATE=true`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

NEVER_PUBLIC = tuple(ipaddress.ip_network(n) for n in (
    "192.0.0.0/24",  # IETF protocol assignments (some clouds' metadata endpoints)
    "64:ff9b:1::/48",  # local-use NAT64
))
"""Ranges some Python versions call global that a webhook must never reach."""

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for: mapped, 6to4, NAT64 or IPv4-compatible."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast; an IPv6 address that embeds an IPv4 one is judged by
    both."""
    if isinstance(ip, ipaddress.IPv6Address) and (v4 := _embedded_ipv4(ip)) is not None \
            and not is_public(v4):
        return False
    if any(ip in net for net in NEVER_PUBLIC if net.version == ip.version):
        return False
    return ip.is_global and not ip.is_multicast


def literal_problem(url: str) -> str | None:
    """Why `url` names a non-public host outright, or None (names are checked when used)."""
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "its port is not a number from 0 to 65535"
    host = (parts.hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine, not a public address"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public(ip) else f"{host} is not a public address"


async def resolved_problem(url: str) -> str | None:
    """Why `url`'s host resolves to a non-public address or cannot be a host at all, or
    None. Raises OSError when the name does not resolve (retryable: DNS may be down)."""
    if problem := literal_problem(url):
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except UnicodeError as err:  # e.g. an empty or over-long label: never resolvable
        return f"{host} is not a valid host name ({err})"
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if not is_public(ipaddress.ip_address(address)):
            return f"{host} resolves to {address}, which is not a public address"
    return None
