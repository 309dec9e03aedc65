"""Screening and report rendering run off the event loop in a bounded pool (F6): while four
worst-case screenings (every free-text field at its limit with a repeated negated phrase) are
computed at once, /healthz keeps answering within 0.5 s."""

from __future__ import annotations

import asyncio
import statistics
import time
from typing import Any

import httpx
import pytest

from app.db import Database
from app.engine import ScreeningInput
from app.main import create_app
from tests.conftest import make_client, token_for
from tests.test_canary import canary_body

pytestmark = pytest.mark.anyio

PHRASE = "不是法轮功成员，"  # a negation cue, a group and a clause mark, repeated


def worst_case_body() -> dict[str, Any]:
    body, fields = canary_body()
    schema = ScreeningInput.model_json_schema()
    limits: dict[str, int] = {}

    def walk(node: dict[str, Any], defs: dict[str, Any], path: str) -> None:
        if "$ref" in node:
            walk(defs[node["$ref"].split("/")[-1]], defs, path)
            return
        for option in node.get("anyOf", []):
            walk(option, defs, path)
        if node.get("type") == "object":
            for name, sub in node.get("properties", {}).items():
                walk(sub, defs, f"{path}.{name}" if path else name)
        if node.get("type") == "array":
            walk(node["items"], defs, f"{path}[0]")
        if node.get("type") == "string" and "maxLength" in node:
            limits[path] = node["maxLength"]

    walk(schema, schema["$defs"], "")

    def fill(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {k: fill(v, f"{path}.{k}" if path else k) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v, f"{path}[0]") for v in node]
        if path in fields:
            n = limits.get(path, 200)
            return (PHRASE * (n // len(PHRASE) + 1))[:n]
        return node

    out = fill(body, "")
    ScreeningInput.model_validate(out)
    return dict(out)


async def test_worst_case_screenings_leave_healthz_fast(
    settings: Any, database: Database, kb: Any
) -> None:
    roomy = settings.model_copy(update={"max_body_bytes": 1024 * 1024, "rate_limit_client": ""})
    app = create_app(roomy, database=database, knowledge_base=kb)
    body = worst_case_body()
    creds = make_client(database, "tenant-a")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t", timeout=120) as c:
        headers = {"Authorization": f"Bearer {await token_for(c, creds)}"}
        start = time.perf_counter()
        one = await c.post("/v1/screenings", json=body, headers=headers)
        single_s = time.perf_counter() - start
        assert one.status_code == 201, one.text
        report = await c.get(f"/v1/screenings/{one.json()['id']}/report", headers=headers)
        assert report.status_code == 200
        health: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:
            while not done.is_set():
                t0 = time.perf_counter()
                assert (await c.get("/healthz")).status_code == 200
                health.append(time.perf_counter() - t0)
                await asyncio.sleep(0.02)

        async def screen() -> int:
            r = await c.post("/v1/screenings", json=body, headers=headers)
            return r.status_code

        prober = asyncio.create_task(probe())
        await asyncio.sleep(0.05)
        start = time.perf_counter()
        statuses = await asyncio.gather(*(screen() for _ in range(4)))
        four_s = time.perf_counter() - start
        done.set()
        await prober
    size = len(str(body).encode())
    print(
        f"SECMETRIC cpu_off_loop body_bytes~{size} single_s={single_s:.3f} four_s={four_s:.3f} "
        f"healthz_probes={len(health)} healthz_median_s={statistics.median(health):.3f} "
        f"healthz_max_s={max(health):.3f}"
    )
    assert statuses == [201] * 4
    assert max(health) < 0.5
