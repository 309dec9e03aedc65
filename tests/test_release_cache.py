"""Releases for ``rescreen?knowledge_base_version=`` (F12): loaded once per process into a
bounded LRU cache, and loaded in a thread so the event loop keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import copy
import statistics
import time
from typing import Any

import httpx
import pytest

from app import releases as releases_module
from app.db import Database
from app.kb.loader import read_files
from app.models import KnowledgeRelease
from app.releases import CACHED, encode
from app.report import canonical_sha256

pytestmark = pytest.mark.anyio

STORED = 7  # as in the report: cycling over seven stored releases
BODY = {"subject": {"occupation": "journalist", "nationalities": ["RU"]}}


def _store_releases(database: Database, n: int) -> list[str]:
    base: Any = read_files()
    versions = []
    with database.session() as s:
        for i in range(n):
            files: Any = copy.deepcopy(base)
            version = f"8.0.{i}"
            files["release.yaml"]["version"] = version
            s.add(
                KnowledgeRelease(
                    version=version,
                    sha256=canonical_sha256(files),
                    published=str(files["release.yaml"]["published"]),
                    bundle=encode(files),
                    uploaded_by="test",
                )
            )
            versions.append(version)
    return versions


async def test_cycling_releases_loads_each_once_and_off_the_event_loop(
    app: Any,
    client: httpx.AsyncClient,
    database: Database,
    auth_a: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert STORED <= CACHED
    versions = _store_releases(database, STORED)
    created = await client.post("/v1/screenings", json=BODY, headers=auth_a)
    assert created.status_code == 201, created.text
    url = f"/v1/screenings/{created.json()['id']}/rescreen"
    releases = app.state.releases

    # Make each load hold the CPU for 0.5 s the way a real one does (0.2-1.1 s), so that a
    # load on the event loop would show in /healthz.
    real_load = releases_module.load_files

    def slow_load(files: Any) -> Any:
        time.sleep(0.5)
        return real_load(files)

    monkeypatch.setattr(releases_module, "load_files", slow_load)

    health: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        while not done.is_set():
            start = time.perf_counter()
            r = await client.get("/healthz")
            health.append(time.perf_counter() - start)
            assert r.status_code == 200
            await asyncio.sleep(0.05)

    async def cycle() -> list[float]:
        took = []
        for _ in range(3):
            for version in versions:
                start = time.perf_counter()
                r = await client.post(
                    url, params={"knowledge_base_version": version}, headers=auth_a
                )
                took.append(time.perf_counter() - start)
                assert r.status_code == 200, r.text
                assert r.json()["screening"]["knowledge_base"]["version"] == version
        done.set()
        return took

    prober = asyncio.create_task(probe())
    took = await cycle()
    await prober
    first, rest = took[:STORED], took[STORED:]
    print(
        f"SECMETRIC release_cache stored={STORED} calls={len(took)} loads={releases.loads} "
        f"first_round_median_s={statistics.median(first):.3f} "
        f"later_median_s={statistics.median(rest):.3f} healthz_probes={len(health)} "
        f"healthz_max_s={max(health):.3f}"
    )
    assert releases.loads == STORED  # each release loaded once, then served from the cache
    assert max(health) < 0.5  # the loads did not hold the event loop
    unknown = await client.post(url, params={"knowledge_base_version": "9.9.9"}, headers=auth_a)
    assert unknown.status_code == 404
