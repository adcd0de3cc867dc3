"""Rate limits for the public endpoints (survey links, portal and console sign-in).

A limit counts one key in one scope: the survey page counts per client address, the sign-in counts
per user name (so rotating addresses does not buy more guesses) and, separately, per client address
(so one address cannot spray guesses over many names). The client address is the TCP peer, or what a
trusted proxy forwarded (``common.proxies``); a header a caller writes itself never counts.

Built on the ``limits`` library (moving window). With ``PREVENANCE_RATE_LIMIT_STORAGE=redis://…``
every API worker shares the counts; the default ``memory://`` counts per process (one worker, or a
test). Exceeding a limit is a 429 problem with ``Retry-After``; nothing is written.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import limits
from fastapi import Request
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from prevenance.common.problems import RateLimited


class RateLimiter:
    """One limiter per app: a storage and the moving-window strategy."""

    def __init__(self, storage_uri: str = "memory://") -> None:
        self.storage = storage_from_string(storage_uri)
        self.strategy = MovingWindowRateLimiter(self.storage)

    def hit(self, rule: str, *identifiers: str) -> float | None:
        """Count one request; None when allowed, else the seconds to wait."""
        item = limits.parse(rule)
        if self.strategy.hit(item, *identifiers):
            return None
        stats = self.strategy.get_window_stats(item, *identifiers)
        return max(1.0, stats.reset_time - time.time())


def client_address(request: Request) -> str:
    """The caller's address: the TCP peer, or the client a trusted proxy forwarded (written into the
    request by ``TrustedProxies.rewrite`` before it got here)."""
    return request.client.host if request.client else "unknown"


def enforce(request: Request, *, scope: str, rule: str, key: str) -> None:
    """Raise a 429 problem when ``key`` (a user name, a client address) went over ``rule`` in
    ``scope``; the count is the key's, whatever address or header the request came with."""
    limiter: RateLimiter = request.app.state.rate_limiter
    wait = limiter.hit(rule, scope, key)
    if wait is not None:
        raise RateLimited(f"too many requests; retry in {math.ceil(wait)} s", retry_after=math.ceil(wait))


def limited(
    scope: str, rule_of: Callable[[Request], str], key_of: Callable[[Request], str]
) -> Callable[[Request], None]:
    """A FastAPI dependency applying ``enforce`` with a rule and key read from the request."""

    def _dependency(request: Request) -> None:
        enforce(request, scope=scope, rule=rule_of(request), key=key_of(request))

    return _dependency
