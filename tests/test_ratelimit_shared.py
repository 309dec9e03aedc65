"""Limits shared across processes: with RATE_LIMIT_STORAGE_URL on one Redis, two real API
processes enforce one limit together; in process memory (the control) each counts alone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.servers import bearer, free_port, sqlite_deployment, start_server, stop

LIMIT = 10
REQUESTS_PER_PROCESS = 15


def _two_processes(tmp_path: Path, storage_url: str) -> tuple[list[int], list[str]]:
    """Statuses and RateLimit-Remaining values of requests sent alternately to two server
    processes of one deployment, all with one client's token."""
    env, creds = sqlite_deployment(
        tmp_path,
        RATE_LIMIT_CLIENT=f"{LIMIT}/minute",
        RATE_LIMIT_TENANT="",
        RATE_LIMIT_TOKEN_ADDRESS="",
        RATE_LIMIT_TOKEN_CLIENT="",
        RATE_LIMIT_STORAGE_URL=storage_url,
        BATCH_WORKER="false",
        BATCH_WORKER_PROCESSES="0",
        WEBHOOK_POLL_SECONDS="0",
        PURGE_INTERVAL_SECONDS="0",
    )
    first, port1 = start_server(env, tmp_path / "server-1.log")
    try:
        second, port2 = start_server(env, tmp_path / "server-2.log")
        try:
            bases = [f"http://127.0.0.1:{port1}", f"http://127.0.0.1:{port2}"]
            headers = bearer(bases[0], creds)
            statuses: list[int] = []
            remaining: list[str] = []
            for _ in range(REQUESTS_PER_PROCESS):
                for base in bases:
                    r = httpx.get(base + "/v1/screenings", headers=headers, timeout=10)
                    statuses.append(r.status_code)
                    remaining.append(r.headers.get("ratelimit-remaining", ""))
            return statuses, remaining
        finally:
            stop(second)
    finally:
        stop(first)


def test_two_processes_on_one_redis_enforce_one_limit(tmp_path: Path, redis_url: str) -> None:
    statuses, remaining = _two_processes(tmp_path / "shared", redis_url)
    ok, limited = statuses.count(200), statuses.count(429)
    control, _ = _two_processes(tmp_path / "memory", "")
    print(
        f"SECMETRIC shared_limit limit={LIMIT}/minute processes=2 "
        f"requests={len(statuses)} redis_2xx={ok} redis_429={limited} "
        f"memory_2xx={control.count(200)}"
    )
    assert set(statuses) <= {200, 429}
    assert ok == LIMIT  # both processes together, not LIMIT each
    assert limited == len(statuses) - LIMIT
    # Alternating requests: each process answered half of the 200s, and the budget each
    # reported counted the other's requests too.
    assert statuses[:LIMIT] == [200] * LIMIT
    assert remaining[:LIMIT] == [str(n) for n in range(LIMIT - 1, -1, -1)]
    # The control: in process memory each process allows the whole limit.
    assert control.count(200) == 2 * LIMIT


def test_an_unreachable_store_is_a_503_with_retry_after(tmp_path: Path) -> None:
    env, creds = sqlite_deployment(tmp_path, RATE_LIMIT_TOKEN_ADDRESS="")
    base_env = {**env, "BATCH_WORKER_PROCESSES": "0", "WEBHOOK_POLL_SECONDS": "0"}
    proc, port = start_server(base_env, tmp_path / "ok.log")
    try:
        headers = bearer(f"http://127.0.0.1:{port}", creds)
    finally:
        stop(proc)
    dead = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    proc, port = start_server({**base_env, "RATE_LIMIT_STORAGE_URL": dead}, tmp_path / "dead.log")
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/v1/screenings", headers=headers, timeout=10)
    finally:
        stop(proc)
    assert r.status_code == 503
    assert r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    assert "redis" not in r.text.lower()


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/0", "", "memory://"])
def test_storage_urls_are_accepted(url: str) -> None:
    from app.settings import Settings

    assert Settings(rate_limit_storage_url=url).rate_limit_storage_url == url


@pytest.mark.parametrize("url", ["lots", "http://127.0.0.1:6379", "async+redis://127.0.0.1"])
def test_storage_urls_are_validated(url: str) -> None:
    from pydantic import ValidationError

    from app.settings import Settings

    with pytest.raises(ValidationError):
        Settings(rate_limit_storage_url=url)
