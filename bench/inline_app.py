"""The service with the engine run on the event loop instead of the bounded CPU thread pool,
for bench/api_bench.py --variants only: the difference is what the thread hand-over costs
POST /v1/screenings (never serve this: a heavy body would stall every other request).

    uvicorn bench.inline_app:create_app --factory
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from app.api import screenings as screenings_api
from app.main import create_app

T = TypeVar("T")


async def _inline(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


screenings_api.off_loop = _inline  # type: ignore[assignment]

__all__ = ["create_app"]
