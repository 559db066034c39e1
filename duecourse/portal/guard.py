"""Rate limits for the borrower page: per link and per client IP, in this process.

A sliding 10-minute window of request times per key. Counted in memory in each API
process (several processes each allow the limit; put a proxy limit in front when that
matters). Every request counts, a wrong link too, so guessing links is slow as well.

The client's address: the connection's, unless it comes from a trusted proxy
(`portal_trusted_proxies`); then X-Forwarded-For is read from the right, past every
trusted hop, and the first untrusted address is the client (the hops to the left of it
are whatever the client wrote, so never believed). An IPv6 client is counted by its /64
(one subscriber's network: a host picks any of its 2^64 addresses at will).
"""

from __future__ import annotations

import ipaddress
import time
from collections import deque
from collections.abc import Callable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

WINDOW = 600.0
"""Seconds over which requests are counted."""
MAX_KEYS = 50_000
"""Keys remembered at most (the oldest idle ones are forgotten first)."""


class RateLimiter:
    def __init__(self, limit: int, window: float = WINDOW,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limit, self._window, self._clock = limit, window, clock
        self._hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one request for `key`; False once it made `limit` in the window."""
        now = self._clock()
        hits = self._hits.pop(key, None) or deque()
        while hits and hits[0] <= now - self._window:
            hits.popleft()
        allowed = len(hits) < self._limit
        if allowed:
            hits.append(now)
        self._hits[key] = hits  # re-inserted: dict order is least recently used first
        while len(self._hits) > MAX_KEYS:
            self._hits.pop(next(iter(self._hits)))
        return allowed


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # [v6]:port
        text = text[1:text.index("]")]
    elif text.count(":") == 1:  # v4:port
        text = text.partition(":")[0]
    try:
        found = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(found, ipaddress.IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def client_ip(peer: str | None, forwarded_for: Sequence[str],
              trusted: Sequence[Network]) -> str:
    """The client's address: `peer` (the connection's), or - when `peer` is a trusted
    proxy - the rightmost X-Forwarded-For hop that is not one (every header's hops, in
    order; a hop that is not an address ends the walk there: it is what the client sent)."""
    here = _address(peer or "")
    if here is None:
        return peer or "unknown"

    def is_trusted(a: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return any(a.version == n.version and a in n for n in trusted)

    hops = [h for header in forwarded_for for h in header.split(",") if h.strip()]
    while is_trusted(here) and hops:
        nxt = _address(hops.pop())
        if nxt is None:
            break
        here = nxt
    return str(here)


def ip_key(ip: str) -> str:
    """The rate limit's key for an address: itself for IPv4, its /64 for IPv6."""
    found = _address(ip)
    if isinstance(found, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((found, 64), strict=False))
    return str(found) if found is not None else ip


class PortalGuard:
    """Both limits: a request passes only if its link and its IP are under theirs."""

    def __init__(self, per_token: int, per_ip: int) -> None:
        self.tokens = RateLimiter(per_token)
        self.ips = RateLimiter(per_ip)

    def allow(self, token: str, ip: str) -> bool:
        ip_ok = self.ips.allow(ip_key(ip))
        return self.tokens.allow(token[-43:]) and ip_ok  # the signature names the link
