"""Bounded observability (F8): invented HTTP methods and unmatched paths share one label
(``other``), so they add no metric series and put no client-chosen text in the access log."""

from __future__ import annotations

import logging
import random
import string
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.anyio

INVENTED = 5_000


def _series(text: str) -> set[str]:
    return {line.split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


async def test_invented_methods_and_paths_add_no_series(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(20261203)

    def invented() -> str:
        return "X" + "".join(rng.choices(string.ascii_uppercase, k=10))

    # One of each kind first, so the `other` series exist before counting.
    await client.request(invented(), "/v1/screenings")
    await client.request(invented(), "/no-such-" + invented().lower())
    await client.get("/no-such-path")
    await client.get("/metrics")  # its own series
    before = (await client.get("/metrics")).text
    statuses: set[int] = set()
    methods: list[str] = []
    with caplog.at_level(logging.INFO, logger="app.access"):
        for i in range(INVENTED):
            method = invented()
            methods.append(method)
            path = "/v1/screenings" if i % 2 else f"/nowhere/{method.lower()}"
            statuses.add((await client.request(method, path)).status_code)
    after = (await client.get("/metrics")).text
    new_series = _series(after) - _series(before)
    logged: list[Any] = [
        (r.__dict__.get("method"), r.__dict__.get("route")) for r in caplog.records
    ]
    leaked = sum(1 for m, route in logged if m in methods or (route and "nowhere" in str(route)))
    print(
        f"SECMETRIC metrics_labels invented_methods={INVENTED} new_series={len(new_series)} "
        f"metrics_bytes_before={len(before)} metrics_bytes_after={len(after)} "
        f"log_records={len(logged)} client_text_in_log={leaked} statuses={sorted(statuses)}"
    )
    assert new_series == set()
    assert len(logged) == INVENTED
    assert leaked == 0
    assert {m for m, _ in logged} == {"other"}
    assert 'method="other"' in after
    assert statuses <= {404, 405}
