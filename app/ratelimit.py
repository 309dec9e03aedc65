"""Request limits: per client and per tenant after the token is verified, and per source
address and per client id at the token endpoint before any secret is checked.

Moving windows (the ``limits`` library). With ``RATE_LIMIT_STORAGE_URL`` unset the counters
live in process memory, so each API process enforces the limits on its own and N replicas
allow N times the limit; set it (``redis://host:6379/0``, or any other storage ``limits``
supports) and every process counts in one place, so the limit holds for all of them
together. If that storage cannot be reached a request is answered 503 with ``Retry-After``
(never let through uncounted). Health, readiness and metrics are not limited.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.errors import StorageError
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from app.auth import CLIENT_ID_RE, Principal
from app.errors import ServiceUnavailable, TooManyRequests

# Counters in a shared storage are named under this prefix (limits' own key layout after it).
KEY_PREFIX = "notice-screening"


@dataclass(frozen=True, slots=True)
class Limits:
    per_client: RateLimitItem | None
    per_tenant: RateLimitItem | None
    # POST /v1/auth/token, counted before the secret is looked at.
    token_per_address: RateLimitItem | None = None
    token_per_client: RateLimitItem | None = None


def parse_limit(text: str) -> RateLimitItem | None:
    """``"1200/minute"`` -> a limit; an empty string -> no limit. Raises ValueError."""
    text = text.strip()
    return parse(text) if text else None


def make_storage(url: str) -> Storage:
    """Process memory for an empty ``url``; otherwise the ``limits`` storage it names, with
    its errors wrapped (``StorageError``) so an outage is one exception to answer."""
    if not url.strip():
        return MemoryStorage()
    options: dict[str, str | bool] = {"wrap_exceptions": True}
    if url.strip().startswith(("redis", "valkey")):
        options["key_prefix"] = KEY_PREFIX
    storage = storage_from_string(url.strip(), **options)
    if not isinstance(storage, Storage):  # an async+ scheme (the settings refuse them)
        raise ValueError("rate-limit storage must not be an async+ scheme")
    return storage


class RateLimiter:
    def __init__(self, limits: Limits, storage: Storage | None = None) -> None:
        self.limits = limits
        self._window = MovingWindowRateLimiter(storage or MemoryStorage())

    def check(self, principal: Principal) -> dict[str, str]:
        """Count one request for the client and its tenant; raise 429 past either limit.
        Returns the RateLimit headers of the tighter of the two, for the response."""
        return self._hit(
            (self.limits.per_client, f"client:{principal.client_id}"),
            (self.limits.per_tenant, f"tenant:{principal.tenant_id}"),
        )

    def check_token_attempt(self, *, address: str, client_id: str) -> None:
        """Count one token request for its source address and the client id it names, before
        the secret is checked, so a flood of guesses is refused at the cost of a counter. A
        client id that is not well formed shares one bucket (no attacker-chosen key is kept);
        the address is counted first so a flood from one address adds no client-id keys."""
        named = client_id if CLIENT_ID_RE.fullmatch(client_id) else "(malformed)"
        self._hit(
            (self.limits.token_per_address, f"token-address:{address}"),
            (self.limits.token_per_client, f"token-client:{named}"),
        )

    def _hit(self, *checks: tuple[RateLimitItem | None, str]) -> dict[str, str]:
        try:
            return self._count(*checks)
        except StorageError:
            raise ServiceUnavailable(
                "The rate-limit store is unavailable; retry after the number of seconds in "
                "Retry-After.",
                headers={"Retry-After": "1"},
            ) from None

    def _count(self, *checks: tuple[RateLimitItem | None, str]) -> dict[str, str]:
        tightest: tuple[int, int, float] | None = None  # (remaining, limit, reset time)
        for item, key in checks:
            if item is None:
                continue
            if self._window.hit(item, key):
                stats = self._window.get_window_stats(item, key)
                if tightest is None or stats.remaining < tightest[0]:
                    tightest = (stats.remaining, item.amount, stats.reset_time)
                continue
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
        if tightest is None:
            return {}
        remaining, amount, reset_at = tightest
        reset = max(0, math.ceil(reset_at - time.time()))
        return {
            "RateLimit-Limit": str(amount),
            "RateLimit-Remaining": str(remaining),
            "RateLimit-Reset": str(reset),
        }
