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


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast (IPv4-mapped IPv6 judged by its IPv4 address)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def literal_problem(url: str) -> str | None:
    """Why `url` names a non-public host outright, or None (names are checked when used)."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return f"{host} is this machine, not a public address"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return None if is_public(ip) else f"{host} is not a public address"


async def resolved_problem(url: str) -> str | None:
    """Why `url`'s host resolves to a non-public address, or None. Raises OSError when the
    name does not resolve (a retryable failure: DNS may be down)."""
    if problem := literal_problem(url):
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        if not is_public(ipaddress.ip_address(address)):
            return f"{host} resolves to {address}, which is not a public address"
    return None
