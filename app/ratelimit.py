"""Per-client and per-tenant request limits, checked after the token is verified.

Moving windows in process memory (the ``limits`` library): each API process enforces the
limits on its own, so with N replicas a client can make up to N times the limit. Health,
readiness and metrics are not limited; the token endpoint is limited by its Argon2 cost.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from app.auth import Principal
from app.errors import TooManyRequests


@dataclass(frozen=True, slots=True)
class Limits:
    per_client: RateLimitItem | None
    per_tenant: RateLimitItem | None


def parse_limit(text: str) -> RateLimitItem | None:
    """``"1200/minute"`` -> a limit; an empty string -> no limit. Raises ValueError."""
    text = text.strip()
    return parse(text) if text else None


class RateLimiter:
    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._window = MovingWindowRateLimiter(MemoryStorage())

    def check(self, principal: Principal) -> None:
        """Count one request for the client and its tenant; raise 429 past either limit."""
        for item, key in (
            (self.limits.per_client, f"client:{principal.client_id}"),
            (self.limits.per_tenant, f"tenant:{principal.tenant_id}"),
        ):
            if item is None:
                continue
            if not self._window.hit(item, key):
                stats = self._window.get_window_stats(item, key)
                retry = max(1, math.ceil(stats.reset_time - time.time()))
                raise TooManyRequests(
                    "Too many requests; retry after the number of seconds in Retry-After.",
                    headers={
                        "Retry-After": str(retry),
                        "RateLimit-Limit": str(item.amount),
                        "RateLimit-Remaining": "0",
                        "RateLimit-Reset": str(retry),
                    },
                )
