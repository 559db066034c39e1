"""Rate limits for the borrower page: per link and per client IP, in this process.

A sliding 10-minute window of request times per key. Counted in memory in each API
process (several processes each allow the limit; put a proxy limit in front when that
matters). Every request counts, a wrong link too, so guessing links is slow as well.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

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


class PortalGuard:
    """Both limits: a request passes only if its link and its IP are under theirs."""

    def __init__(self, per_token: int, per_ip: int) -> None:
        self.tokens = RateLimiter(per_token)
        self.ips = RateLimiter(per_ip)

    def allow(self, token: str, ip: str) -> bool:
        ip_ok = self.ips.allow(ip)
        return self.tokens.allow(token[-43:]) and ip_ok  # the signature names the link
