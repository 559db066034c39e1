"""Keep webhooks pointed at the public internet (server-side request forgery guard).

A platform's webhook URL makes our worker send POST requests; without a guard a URL such as
`http://169.254.169.254/` or `http://10.0.0.5:5432/` would turn the worker into a probe of
the lender's own network. Registration refuses literal private addresses and `localhost`;
every delivery resolves the host once, refuses it when any address is not public (DNS can
change after registration), and then connects to a checked address itself: the HTTP
client never looks the name up again, so a DNS answer that changes between the check and
the connection (DNS rebinding) cannot steer the request. The Host header and TLS (SNI and
certificate verification) still use the name. Local development and tests opt out of the
check with `DUECOURSE_WEBHOOK_ALLOW_PRIVATE=true`; the pinning applies either way.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

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


Resolve = Callable[[str, int], Awaitable[Sequence[str]]]
"""Looks a host name up: the addresses it has now, as text, in preference order."""


class Refused(ValueError):
    """The URL names a host a webhook may never reach (or no host at all)."""


async def system_resolve(host: str, port: int) -> list[str]:
    """The operating system's answer for `host`. Raises OSError when the name does not
    resolve (retryable: DNS may be down) and Refused for a name that never can."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                             type=socket.SOCK_STREAM)
    except UnicodeError as err:  # e.g. an empty or over-long label: never resolvable
        raise Refused(f"{host} is not a valid host name ({err})") from None
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in infos))


@dataclass(frozen=True)
class Pinned:
    """A URL's host resolved once and checked: connect to `addresses` only (never ask DNS
    again, which could answer differently: DNS rebinding), in their order."""

    url: httpx.URL
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        """What the receiver sees as Host: the name, as if we had connected by it."""
        return self.url.netloc.decode("ascii")

    def request_to(self, address: str) -> tuple[httpx.URL, dict[str, str]]:
        """The URL that connects to `address`, and the extensions that keep TLS on the
        host name (SNI, and the certificate verified for the name, not the address)."""
        extensions = {} if self.url.scheme != "https" else {
            "sni_hostname": self.url.raw_host.decode("ascii")}
        return self.url.copy_with(host=address), extensions


async def pin(url: str, allow_private: bool = False,
              resolve: Resolve = system_resolve) -> Pinned:
    """Resolve `url`'s host once and, unless `allow_private`, refuse it when any address
    is not public. Raises Refused (never deliverable), OSError (DNS failed: try later)."""
    if not allow_private and (problem := literal_problem(url)):
        raise Refused(problem)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as err:
        raise Refused(f"{url} is not a URL ({err})") from None
    host = parsed.raw_host.decode("ascii")
    if parsed.scheme not in ("http", "https") or not host:
        raise Refused(f"{url} is not an http or https URL with a host")
    try:
        ipaddress.ip_address(host)
        found: Sequence[str] = [host]  # a literal address: nothing to look up
    except ValueError:
        found = await resolve(host, parsed.port or (443 if parsed.scheme == "https" else 80))
    addresses = tuple(dict.fromkeys(a.split("%", 1)[0] for a in found))  # drop zone ids
    if not addresses:
        raise OSError(f"{host} has no address")
    for address in addresses:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise Refused(f"{host} resolves to {address!r}, which is not an address") from None
        if not allow_private and not is_public(ip):
            raise Refused(f"{host} resolves to {address}, which is not a public address")
    return Pinned(parsed, addresses)
