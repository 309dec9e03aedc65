"""Per-client and per-tenant limits: 429 with Retry-After past the limit; other tenants
unaffected."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_client, token_for

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("storage", ["memory", "redis"])
async def test_burst_past_the_client_limit_gets_429_and_other_tenants_do_not(
    settings: Any, database: Any, kb: Any, storage: str, request: pytest.FixtureRequest
) -> None:
    # In process memory and in Redis (RATE_LIMIT_STORAGE_URL): the same answers and headers.
    url = request.getfixturevalue("redis_url") if storage == "redis" else ""
    limited = settings.model_copy(
        update={
            "rate_limit_client": "5/minute",
            "rate_limit_tenant": "1000/minute",
            "rate_limit_storage_url": url,
        }
    )
    app = create_app(limited, database=database, knowledge_base=kb)
    a = make_client(database, "tenant-a")
    b = make_client(database, "tenant-b")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        ha = {"Authorization": f"Bearer {await token_for(client, a)}"}
        hb = {"Authorization": f"Bearer {await token_for(client, b)}"}
        a_statuses = [(await client.get("/v1/knowledge", headers=ha)) for _ in range(8)]
        b_statuses = [(await client.get("/v1/knowledge", headers=hb)).status_code for _ in range(3)]
    ok = [r for r in a_statuses if r.status_code == 200]
    limited_responses = [r for r in a_statuses if r.status_code == 429]
    print(
        f"SECMETRIC T32 limit=5 A_2xx={len(ok)} A_429={len(limited_responses)} "
        f"B_429={b_statuses.count(429)}"
    )
    assert len(ok) == 5
    assert len(limited_responses) == 3
    for r in limited_responses:
        assert r.headers["content-type"] == "application/problem+json"
        assert int(r.headers["retry-after"]) >= 1
        assert r.headers["ratelimit-limit"] == "5"
        assert r.headers["ratelimit-remaining"] == "0"
    assert b_statuses == [200, 200, 200]
    # Every limited response says how much is left, not only the 429s.
    assert [r.headers["ratelimit-limit"] for r in ok] == ["5"] * 5
    assert [r.headers["ratelimit-remaining"] for r in ok] == ["4", "3", "2", "1", "0"]
    assert all(0 <= int(r.headers["ratelimit-reset"]) <= 60 for r in ok)


def test_limits_are_validated(settings: Any) -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError):
        Settings(rate_limit_client="lots")
    assert Settings(rate_limit_client="").rate_limit_client == ""
