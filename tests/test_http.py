"""Cross-cutting HTTP behaviour: problem+json, limits, headers, logs, health and metrics."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from app.observability import JsonFormatter
from tests.conftest import CANARY, Credentials

pytestmark = pytest.mark.anyio


@pytest.fixture
def captured_logs() -> Any:
    records: list[str] = []
    formatter = JsonFormatter()

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(formatter.format(record))

    handler = Handler(level=logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield records
    root.removeHandler(handler)
    root.setLevel(old_level)


async def test_errors_are_problem_json(client: httpx.AsyncClient, auth_a: dict[str, str]) -> None:
    cases = {
        401: await client.get("/v1/knowledge"),
        404: await client.get("/v1/nowhere", headers=auth_a),
        405: await client.delete("/healthz"),
        422: await client.get("/v1/knowledge/sources?limit=1000", headers=auth_a),
    }
    for status, r in cases.items():
        assert r.status_code == status
        assert r.headers["content-type"] == "application/problem+json"
        body = r.json()
        assert body["status"] == status
        assert body["type"].startswith("https://")
        assert body["title"]
        assert body["request_id"] == r.headers["x-request-id"]


async def test_body_over_the_limit_is_413_with_or_without_content_length(
    client: httpx.AsyncClient, settings: Any
) -> None:
    size = settings.max_body_bytes + 1
    sized = await client.post(
        "/v1/auth/token",
        content=b"a" * size,
        headers={"content-type": "application/x-www-form-urlencoded"},
    )

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(size // 4096 + 2):
            yield b"a" * 4096

    chunked = await client.post(
        "/v1/auth/token",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert "content-length" not in chunked.request.headers
    for r in (sized, chunked):
        assert r.status_code == 413
        assert r.headers["content-type"] == "application/problem+json"
    print("SECMETRIC T30 oversize_requests=2 status=413")


async def test_security_headers_and_request_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/healthz", headers={"X-Request-ID": "0123456789abcdef0123"})
    assert r.headers["x-request-id"] == "0123456789abcdef0123"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    assert r.headers["cache-control"] == "no-store"
    hostile = await client.get("/healthz", headers={"X-Request-ID": "<script>" + "x" * 100})
    assert hostile.headers["x-request-id"] != "<script>" + "x" * 100


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    r = await client.options(
        "/v1/knowledge",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_canary_in_bad_requests_reaches_no_log_and_no_error_body(
    client: httpx.AsyncClient,
    auth_a: dict[str, str],
    tenant_a: Credentials,
    captured_logs: list[str],
) -> None:
    responses = [
        await client.get(f"/v1/knowledge/sources?limit={CANARY}", headers=auth_a),
        await client.get(f"/v1/knowledge/cases?country={CANARY}", headers=auth_a),
        await client.get(f"/v1/clients/{CANARY}", headers=auth_a),
        await client.get(f"/v1/knowledge/sources/{CANARY}", headers=auth_a),
        await client.post("/v1/auth/token", data={"grant_type": CANARY}),
        await client.post(
            "/v1/auth/token",
            data={"grant_type": "client_credentials", "client_id": CANARY, "client_secret": CANARY},
        ),
        await client.post(
            "/v1/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": tenant_a.client_id,
                "client_secret": tenant_a.client_secret,
                "scope": CANARY,
            },
        ),
        await client.get("/v1/knowledge", headers={"Authorization": f"Bearer {CANARY}"}),
        await client.get(f"/{CANARY}", headers={"X-Request-ID": CANARY}),
    ]
    assert all(r.status_code >= 400 for r in responses)
    leaks_in_bodies = sum(CANARY in r.text for r in responses)
    leaks_in_logs = sum(CANARY in line for line in captured_logs)
    access = [json.loads(line) for line in captured_logs if '"msg": "request"' in line]
    print(
        f"SECMETRIC T70 requests={len(responses)} log_lines={len(captured_logs)} "
        f"body_hits={leaks_in_bodies} log_hits={leaks_in_logs}"
    )
    assert len(access) >= len(responses)
    assert {"route", "status", "duration_ms", "request_id"} <= access[0].keys()
    assert [r.text for r in responses if CANARY in r.text] == []
    assert [line for line in captured_logs if CANARY in line] == []


async def test_healthz_readyz_and_metrics(
    client: httpx.AsyncClient, auth_a: dict[str, str]
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    await client.get("/v1/knowledge", headers=auth_a)
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'route="/v1/knowledge"' in metrics.text
    assert "http_request_duration_seconds_bucket" in metrics.text


async def test_readyz_fails_when_migrations_are_behind(app: Any, client: httpx.AsyncClient) -> None:
    app.state.migration_head = "not-the-head"
    r = await client.get("/readyz")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"


async def test_unhandled_errors_are_a_500_problem_without_details(
    app: Any, captured_logs: list[str]
) -> None:
    def explode() -> None:
        raise RuntimeError(f"driver said: value {CANARY} violates a constraint")

    app.add_api_route("/v1/explode", explode, methods=["GET"])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        r = await c.get("/v1/explode")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert CANARY not in r.text
    assert "RuntimeError" not in r.text
    assert [line for line in captured_logs if CANARY in line] == []
    assert any('"error_type": "RuntimeError"' in line for line in captured_logs)
